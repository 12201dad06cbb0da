"""Expert iteration, for real and small.

- Its sampling survives a SIGKILL: a real process killed mid-round leaves its episodes on disk, and the
  rerun keeps every question whose G samples all finished (byte for byte), drops the samples of the
  question the kill cut short, and samples only the rest: nothing lost or counted twice.
- A round killed mid-fine-tune resumes from its newest checkpoint to the uninterrupted round's adapter.
- One round raises live-rollout EM from the weak agent (`tests/support/weak_agent.py`): sample, keep
  the rewarded, fine-tune with the same SFT recipe via `python -m fireact.train`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from weak_agent import HELD_OUT, SFT

from fireact.data.synthetic import write_world
from fireact.data.token_log import TokenTurn
from fireact.modules.expert_iteration import ExpertIteration
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
    from fireact.modules.expert_iteration import hindsight_finish

    def ep(turns: list[Turn], prediction: str | None, gold: str = "Henrik Ibsen") -> Trajectory:
        right = float(prediction == gold)
        return Trajectory("Who wrote it?", gold, "hotpotqa", "react", turns, prediction, right, right, "finish", "7")

    seen_late = ep([Turn("a", "search[x]", "x: nothing"), Turn("b", "search[y]", "Peer Gynt: A play. Written by "
                    "Henrik Ibsen in 1867. Staged in 1876."), Turn("c", "finish[Bjornson]")], "Bjornson")  # fmt: skip
    seen_first = ep([Turn("a", "search[Peer Gynt]", "Peer Gynt: A play by henrik ibsen!"),
                     Turn("b", "search[z]", "z"), Turn("c", "finish[Goethe]")], "Goethe")  # fmt: skip
    seen_first.token_turns = [TokenTurn(0, [1], [2, 3], [-0.1, -0.2])]
    h = hindsight_finish([seen_late, seen_first])
    assert [t.action for t in h.turns] == ["search[Peer Gynt]", "finish[Henrik Ibsen]"]  # cut after the first sight
    assert h.token_turns is None  # written, not sampled: trained on its rendered text
    assert h.turns[-1].thought == "A play by henrik ibsen! So the answer is Henrik Ibsen."
    assert (h.em, h.prediction, h.finished, h.meta["hindsight"]) == (1.0, "Henrik Ibsen", True, True)
    assert seen_first.prediction == "Goethe"  # the sample itself is left as it was
    h = hindsight_finish([seen_late])
    assert h.turns[-1].thought == "Written by Henrik Ibsen in 1867. So the answer is Henrik Ibsen."

    assert hindsight_finish([ep([Turn("c", "finish[Henrik Ibsen]")], "Henrik Ibsen"), seen_late]) is None  # solved
    assert hindsight_finish([ep([Turn("a", "search[x]", "Ibsenite"), Turn("c", "finish[no]")], "no")]) is None
    assert hindsight_finish([ep([Turn("a", "search[q]", "yes it is")], "no", gold="yes")]) is None  # yes/no gold


def test_a_round_killed_mid_training_resumes_from_its_checkpoint(tmp_path, tiny_model_dir, monkeypatch):
    """SIGKILL at training step 5 of a round (checkpoints every 2 steps): the rerun resumes at step 4,
    and the exported adapter is the uninterrupted round's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from fireact.errors import FireactError

    world = write_world(tmp_path / "world", n_people=30, n_dev=4, seed=2)
    torch.manual_seed(0)
    start = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=8, lora_alpha=16))
    start.save_pretrained(tmp_path / "start")
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 8, "limit_val_batches": 0,
                    "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"model": tiny_model_dir, "lr": 0.02, "warmup": 1, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
        "data": {"class_path": "fireact.modules.datamodule.TrajectoryDataModule",
                 "init_args": {"tokenizer": tiny_model_dir, "cutoff": 256, "val_size": 0, "batch_size": 2,
                               "data_dir": str(world)}},
    }  # fmt: skip
    (tmp_path / "sft.yaml").write_text(json.dumps(config))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent.parent / "support"), *sys.path]))
    sources = [str(world / "synthetic" / "expert_train.jsonl")]

    def train(rdir: Path, *overrides: str) -> dict:
        loop = ExpertIteration(train_config=str(tmp_path / "sft.yaml"), init_adapter=str(tmp_path / "start"),
                               out=str(tmp_path), train_overrides=list(overrides), checkpoint_every=2)  # fmt: skip
        rdir.mkdir(parents=True, exist_ok=True)
        return load_file(Path(loop.train(rdir, str(tmp_path / "start"), sources)) / "adapter_model.safetensors")

    want = train(tmp_path / "whole")
    cut = tmp_path / "cut"
    kill = ["--trainer.callbacks+=train_helpers.KillAt", "--trainer.callbacks.at_step=5"]
    with pytest.raises(FireactError, match="exit -9"):
        train(cut, *kill)
    step = torch.load(cut / "train" / "checkpoints" / "steps" / "step.ckpt", weights_only=False)
    assert step["global_step"] == 4 and not (cut / "train" / "checkpoints" / "last.ckpt").exists()
    got = train(cut)
    commands = [ln for ln in (cut / "train.log").read_text().splitlines() if " -m fireact.train fit " in ln]
    assert len(commands) == 2 and "--ckpt_path" not in commands[0] and "--ckpt_path" in commands[1]
    assert got.keys() == want.keys()
    for k, v in want.items():
        torch.testing.assert_close(got[k], v)


@pytest.mark.slow(seconds=100)
def test_expert_iteration_round_raises_live_rollout_em(weak_agent, tmp_path):
    from fireact.modules.expert_iteration import ExpertIteration

    world = weak_agent["world"]
    config = {
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 4, "limit_val_batches": 0, "logger": False,
            "enable_progress_bar": False, "enable_model_summary": False,
        },
        "model": {"model": weak_agent["model"], **SFT},
        "data": {
            "class_path": "fireact.modules.datamodule.TrajectoryDataModule",
            "init_args": {"cutoff": 256, "val_size": 0, "batch_size": 2, "seed": 0, "data_dir": str(world)},
        },
    }  # fmt: skip
    (tmp_path / "sft.yaml").write_text(json.dumps(config))
    loop = ExpertIteration(
        train_config=str(tmp_path / "sft.yaml"), init_adapter=str(weak_agent["adapter"]), out=str(tmp_path / "ei"),
        rounds=1, data_dir=str(world), validation=HELD_OUT,
        pool=RolloutConfig(tasks=["synthetic"], split="train", n=8, seed=0, samples=4, temperature=0.7,
                           max_turns=4, max_tokens=40, batch_size=16),
    )  # fmt: skip
    (record,) = loop.run()
    em_before = weak_agent["start"]["em"]
    assert record["kept"] > 0 and record["questions"] == 8 and record["episodes"] == 32
    assert record["val_em"] >= em_before + 0.3, (
        f"expert iteration moved EM only {em_before:.2f} -> {record['val_em']:.2f}"
    )
    assert json.loads((tmp_path / "ei" / "rounds.json").read_text()) == [record]
    assert loop.run() == [record]  # resumable: a finished round is not run again
