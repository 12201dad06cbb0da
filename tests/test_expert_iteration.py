"""Expert iteration's sampling survives a SIGKILL: a real process killed mid-round leaves its episodes
on disk, and the rerun keeps every question whose G samples all finished (byte for byte), drops the
samples of the question the kill cut short, and samples only the rest: nothing lost or counted twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from fireact.data.synthetic import write_world
from fireact.expert_iteration import ExpertIteration
from fireact.rollout.config import RolloutConfig

POOL = RolloutConfig(tasks=["synthetic"], split="train", n=8, seed=0, samples=2, temperature=1.0, max_turns=3,
                     max_tokens=24, batch_size=1)  # fmt: skip
CHILD = """
import sys
from pathlib import Path
from test_expert_iteration import sample
sample(*sys.argv[1:])
"""


def sample(model: str, world: str, log: str) -> int:
    loop = ExpertIteration(train_config="unused.yaml", init_adapter=model, out=str(Path(log).parent), pool=POOL,
                           data_dir=world)  # fmt: skip
    return len(loop.sample_pool(model, Path(world), Path(log), "test"))


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def test_a_killed_round_resumes_its_sampling(tmp_path, tiny_model_dir, capsys):
    world = write_world(tmp_path / "world", n_people=40, n_dev=4, seed=1)
    log = tmp_path / "ei" / "round1" / "sampled.jsonl"
    cmd = [sys.executable, "-c", CHILD, tiny_model_dir, str(world), str(log)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while len(lines(log)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the child finished before it could be killed"
    before = lines(log)
    with log.open("a") as f:  # and a line the kill tore in half
        f.write('{"question": "torn')
    by_q = Counter(json.loads(x)["id"] for x in before)
    whole = [x for x in before if by_q[json.loads(x)["id"]] == 2]
    assert 0 < len(whole) < 16

    assert sample(tiny_model_dir, str(world), str(log)) == 16  # the rerun (here in-process)
    after = lines(log)
    counts = Counter(json.loads(x)["id"] for x in after)
    assert len(counts) == 8 and set(counts.values()) == {2}  # every question exactly G times
    assert after[: len(whole)] == whole  # the finished questions kept as they were, not sampled again
    assert "resuming" in capsys.readouterr().out
    assert sample(tiny_model_dir, str(world), str(log)) == 16 and lines(log) == after  # all done: none re-sampled


def test_hindsight_finish_turns_a_seen_gold_into_a_demonstration():
    from fireact.data.trajectory import Trajectory, Turn
    from fireact.expert_iteration import hindsight_finish

    def ep(turns: list[Turn], prediction: str | None, gold: str = "Henrik Ibsen") -> Trajectory:
        right = float(prediction == gold)
        return Trajectory("Who wrote it?", gold, "hotpotqa", "react", turns, prediction, right, right, "finish", "7")

    seen_late = ep([Turn("a", "search[x]", "x: nothing"), Turn("b", "search[y]", "Peer Gynt: A play. Written by "
                    "Henrik Ibsen in 1867. Staged in 1876."), Turn("c", "finish[Bjornson]")], "Bjornson")  # fmt: skip
    seen_first = ep([Turn("a", "search[Peer Gynt]", "Peer Gynt: A play by henrik ibsen!"),
                     Turn("b", "search[z]", "z"), Turn("c", "finish[Goethe]")], "Goethe")  # fmt: skip
    h = hindsight_finish([seen_late, seen_first])
    assert [t.action for t in h.turns] == ["search[Peer Gynt]", "finish[Henrik Ibsen]"]  # cut after the first sight
    assert h.turns[-1].thought == "A play by henrik ibsen! So the answer is Henrik Ibsen."
    assert (h.reward, h.prediction, h.finished, h.meta["hindsight"]) == (1.0, "Henrik Ibsen", True, True)
    assert seen_first.prediction == "Goethe"  # the sample itself is left as it was
    h = hindsight_finish([seen_late])
    assert h.turns[-1].thought == "Written by Henrik Ibsen in 1867. So the answer is Henrik Ibsen."

    assert hindsight_finish([ep([Turn("c", "finish[Henrik Ibsen]")], "Henrik Ibsen"), seen_late]) is None  # solved
    assert hindsight_finish([ep([Turn("a", "search[x]", "Ibsenite"), Turn("c", "finish[no]")], "no")]) is None
    assert hindsight_finish([ep([Turn("a", "search[q]", "yes it is")], "no", gold="yes")]) is None  # yes/no gold
