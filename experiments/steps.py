"""One resumable step of an experiment: a public CLI command in a subprocess, recorded (command, wall
and CPU time, its last JSON line, the library versions) in a steps.json that a rerun reads to skip it."""

from __future__ import annotations

import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

from fireact.modules.versions import library_versions


def load_steps(record_path: Path) -> dict:
    return json.loads(record_path.read_text()) if record_path.is_file() else {}


def run_step(record_path: Path, name: str, cmd: list[str], done: Path) -> dict:
    """Run `cmd` unless it is recorded and `done` exists; exit naming the step when it fails."""
    records = load_steps(record_path)
    if name in records and done.exists():
        return records[name]
    print(f"[{name}] {shlex.join(cmd)}", flush=True)
    start, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not done.exists():
        sys.exit(f"[{name}] failed with exit code {proc.returncode}: {shlex.join(cmd)}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    record = {
        "cmd": shlex.join(["python", *cmd[1:]]),
        "seconds": round(time.monotonic() - start, 1),
        # CPU time of the step's processes: unlike the wall time, not inflated if the run was paused
        "cpu_seconds": round(used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime, 1),
        "result": json.loads(lines[-1]) if lines else None,
        "versions": library_versions(),  # the same config moved EM 14 -> 10 across a library upgrade
    }
    records = load_steps(record_path)  # another invocation may have recorded steps meanwhile
    records[name] = record
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(records, indent=1))
    return record
