"""One resumable step of an experiment: a public CLI command in a subprocess, recorded (command, wall
and CPU time, its last JSON line, the library versions) in a steps.json that a rerun reads to skip it.

While a step runs, its record is rewritten every `heartbeat_s` as an interrupted attempt, so a step
killed with its runner (a session's end, `kill -9`) still counts the time it spent: the attempts a
resumed step needed stay in its record (`interrupted`) and in `step_cpu_seconds`."""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fireact.modules.versions import library_versions

HEARTBEAT_S = 30.0


def load_steps(record_path: Path) -> dict:
    return json.loads(record_path.read_text()) if record_path.is_file() else {}


def step_cpu_seconds(record: dict) -> float:
    """CPU time a step cost: its finished attempt (if any) and every interrupted one."""
    return record.get("cpu_seconds", 0.0) + sum(a["cpu_seconds"] for a in record.get("interrupted", []))


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its descendants, live or exited (Linux /proc; 0 where there is none).

    getrusage counts a child only once it is reaped; a step killed mid-run never is."""
    parent, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        except (OSError, IndexError):
            continue  # exited meanwhile
        proc = int(stat.parent.name)
        parent[proc] = int(fields[1])
        cpu[proc] = sum(int(f) for f in fields[11:15])  # utime, stime, and those of its reaped children
    tree, frontier = set(), [pid]
    while frontier:
        tree.update(frontier)
        frontier = [p for p, pp in parent.items() if pp in frontier and p not in tree]
    return sum(cpu.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def _save(record_path: Path, name: str, record: dict) -> None:
    records = load_steps(record_path)  # another invocation may have recorded steps meanwhile
    records[name] = record
    record_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(record_path)  # a kill mid-write leaves the previous file whole


def run_step(record_path: Path, name: str, cmd: list[str], done: Path, heartbeat_s: float = HEARTBEAT_S) -> dict:
    """Run `cmd` unless it finished before and `done` exists; exit naming the step when it fails."""
    before = load_steps(record_path).get(name, {})
    if "seconds" in before and done.exists():
        return before
    print(f"[{name}] {shlex.join(cmd)}", flush=True)
    earlier = before.get("interrupted", [])
    attempt = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": 0.0, "cpu_seconds": 0.0}
    start, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    while True:
        try:
            stdout, _ = proc.communicate(timeout=heartbeat_s)  # a retry after a timeout loses no output
            break
        except subprocess.TimeoutExpired:  # what a kill now would leave recorded
            attempt |= {
                "seconds": round(time.monotonic() - start, 1),
                "cpu_seconds": round(process_tree_cpu(proc.pid), 1),
            }
            _save(record_path, name, {"interrupted": [*earlier, attempt]})
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = round(time.monotonic() - start, 1)
    # CPU time of the step's processes: unlike the wall time, not inflated if the run was paused
    cpu_seconds = round(used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime, 1)
    if proc.returncode != 0 or not done.exists():
        attempt |= {"seconds": seconds, "cpu_seconds": cpu_seconds, "exit_code": proc.returncode}
        _save(record_path, name, {"interrupted": [*earlier, attempt]})
        sys.exit(f"[{name}] failed with exit code {proc.returncode}: {shlex.join(cmd)}")
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    record = {
        "cmd": shlex.join(["python", *cmd[1:]]),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "result": json.loads(lines[-1]) if lines else None,
        "versions": library_versions(),  # the same config moved EM 14 -> 10 across a library upgrade
        **({"interrupted": earlier} if earlier else {}),
    }
    _save(record_path, name, record)
    return record


def print_costs(record_path: Path) -> None:
    """Each finished step's wall and CPU minutes, as the results pages report them."""
    for name, rec in load_steps(record_path).items():
        if "seconds" in rec:
            print(f"{name}: {rec['seconds'] / 60:.1f} min wall, {rec['cpu_seconds'] / 60:.1f} CPU-min")


def cli(doc: str, steps: dict[str, tuple[list[str], Path]], report: Any, record_path: Path,
        prepare: Any = None) -> None:  # fmt: skip
    """An experiment's command line: every step in order (`--only` some), or `--report`. `prepare(name)`
    runs before a step that is not done and returns what to close after it (or None)."""
    import argparse

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--only", nargs="+", help="run only these steps (in the order above)")
    p.add_argument("--report", action="store_true", help="print the tables of the experiment's results page")
    args = p.parse_args()
    if args.report:
        return report()
    for name, (cmd, done) in steps.items():
        if args.only is not None and name not in args.only:
            continue
        opened = prepare(name) if prepare is not None and not done.exists() else None
        try:
            run_step(record_path, name, cmd, done)
        finally:
            if opened is not None:
                opened.kill()
