"""A GRPO run SIGKILLed mid-step resumes from its last step checkpoint with no question lost or
played twice: the same questions, rewards, losses and weights as the uninterrupted run (real
processes, from the weak agent of `tests/support/weak_agent.py`)."""

from __future__ import annotations

import json
import sys

import pytest
from cli_runner import run_cli

pytestmark = pytest.mark.slow(seconds=50)


def grpo_run(weak_agent, out, *callbacks: dict, ckpt_path: str | None = None):
    """`python -m fireact.train fit` of a small GRPO config from the weak agent, a checkpoint every step
    (forked from the worker's fork server: the three runs skip importing torch and Lightning again)."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 0, "log_every_n_steps": 1,
            "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(out),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(out), "name": "run"}},
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(out / "ckpt"), "every_n_train_steps": 1, "save_last": True}},
                {"class_path": "train_helpers.RecordQuestions", "init_args": {"path": str(out / "played.jsonl")}},
                *callbacks,
            ],
        },
        "model": {
            "class_path": "fireact.modules.grpo.GRPOLM",
            "init_args": {"model": weak_agent["model"], "init_adapter": str(weak_agent["adapter"]), "lr": 3e-4,
                          "warmup": 0.0, "group_size": 2, "data_dir": str(weak_agent["world"]),
                          "rollouts": {"temperature": 0.7, "max_turns": 3, "max_tokens": 32, "batch_size": 8}},
        },
        "data": {
            "class_path": "fireact.modules.questions.QuestionDataModule",
            "init_args": {"pool": {"tasks": ["synthetic"], "split": "train", "seed": 0}, "questions_per_step": 3,
                          "data_dir": str(weak_agent["world"])},
        },
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "grpo.yaml").write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "fireact.train", "fit", "--config", str(out / "grpo.yaml")]
    cmd += ["--ckpt_path", ckpt_path] if ckpt_path else []
    return run_cli(cmd, timeout=900)


def test_grpo_killed_mid_step_resumes_with_no_question_lost_or_played_twice(weak_agent, tmp_path):
    """SIGKILL after the second step has played and scored its episodes, before its update;
    `--ckpt_path last` resumes from the first step's checkpoint with the questions the killed run had
    not trained on: the questions, rewards, losses and weights are the uninterrupted run's."""
    import csv

    import torch

    def played(out) -> list[dict]:
        return [json.loads(x) for x in (out / "played.jsonl").read_text().splitlines()]

    def metrics(out) -> dict[tuple[int, str], float]:
        steps = {}
        for path in sorted(out.glob("run/version_*/metrics.csv")):  # a resumed run logs into a new version
            for row in csv.DictReader(open(path)):
                for name in ("train/reward_mean", "train/loss") if row.get("train/loss") else ():
                    steps[int(row["step"]), name] = float(row[name])
        return steps

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    r = grpo_run(weak_agent, whole)
    assert r.returncode == 0, r.stderr[-3000:]
    kill = {"class_path": "train_helpers.KillAt", "init_args": {"at_step": 1, "mid_step": True}}
    assert grpo_run(weak_agent, cut, kill).returncode == -9
    assert [p["step"] for p in played(cut)] == [1]  # the second step (global step 1) died before its update
    r = grpo_run(weak_agent, cut, ckpt_path="last")
    assert r.returncode == 0, r.stderr[-3000:]
    assert played(cut) == played(whole)  # the killed step replayed once, no question lost or repeated
    assert "not resumable" not in r.stderr  # Lightning's warning for a loader that restarts the epoch
    ids = [i for p in played(whole) for i in p["ids"]]
    assert len(ids) == len(set(ids)) == 6
    assert metrics(cut) == pytest.approx(metrics(whole)) and {s for s, _ in metrics(whole)} == {0, 1}
    a, b = (torch.load(d / "ckpt" / "last.ckpt", weights_only=False) for d in (whole, cut))
    assert a["global_step"] == b["global_step"] == 2
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v)
