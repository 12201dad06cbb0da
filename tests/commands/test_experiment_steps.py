"""experiments/steps.py: a step killed with its runner keeps the time it spent, and the rerun that
finishes it records both attempts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import steps  # noqa: E402

# The step: busy for 0.6 s (CPU time to count), then finishes if `go` exists, else waits to be killed.
STEP = (
    "import pathlib, sys, time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.6: pass\n"
    "if pathlib.Path(sys.argv[1]).exists():\n"
    "    pathlib.Path(sys.argv[2]).touch(); print('{\"em\": 0.5}')\n"
    "else:\n"
    "    time.sleep(600)\n"
)


def runner(record: Path, go: Path, done: Path) -> list[str]:
    call = (f"import sys; sys.path.insert(0, {str(ROOT / 'experiments')!r}); from pathlib import Path; import steps; "
            f"steps.run_step(Path({str(record)!r}), 'train', [sys.executable, '-c', {STEP!r}, {str(go)!r}, "
            f"{str(done)!r}], Path({str(done)!r}), heartbeat_s=0.2)")  # fmt: skip
    return [sys.executable, "-c", call]


def test_a_killed_step_keeps_its_time_and_the_rerun_records_both(tmp_path):
    record, go, done = tmp_path / "steps.json", tmp_path / "go", tmp_path / "done"
    proc = subprocess.Popen(runner(record, go, done), start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for a heartbeat that counted the busy loop
        attempts = steps.load_steps(record).get("train", {}).get("interrupted", []) if record.is_file() else []
        if attempts and attempts[0]["cpu_seconds"] >= 0.5:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its step, as a session's end does
    proc.wait()
    killed = steps.load_steps(record)["train"]
    assert "seconds" not in killed and killed["interrupted"][0]["cpu_seconds"] >= 0.5  # not taken as finished

    go.touch()
    subprocess.run(runner(record, go, done), check=True, capture_output=True)
    finished = steps.load_steps(record)["train"]
    assert finished["result"] == {"em": 0.5} and finished["interrupted"] == killed["interrupted"]
    assert steps.step_cpu_seconds(finished) >= finished["cpu_seconds"] + 0.5 >= 1.0

    go.unlink()  # finished and done: a rerun skips it (the step would now wait forever)
    subprocess.run(runner(record, go, done), check=True, capture_output=True, timeout=60)
    assert json.loads(record.read_text())["train"] == finished
