"""Training faults on the real DataModule: a run SIGKILLed mid-epoch resumes with `--ckpt_path last`
to the uninterrupted run's loss curve (data position, optimizer, rollout-validation history), and a
checkpoint write that fails part-way leaves the previous checkpoints whole."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from cli_runner import run_cli

from fireact.data.synthetic import write_world

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS, EVERY, KILL_AT = 12, 3, 7  # 8 batches an epoch: killed after the step-6 checkpoint, mid-epoch


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("faults-world"), n_people=30, n_dev=4)


def config(out: Path, world: Path, model_dir: str, *callbacks: dict) -> Path:
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": MAX_STEPS, "log_every_n_steps": 1,
            "val_check_interval": 4, "check_val_every_n_epoch": None, "num_sanity_val_steps": 0,
            "enable_model_summary": False, "default_root_dir": str(out),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(out), "name": "run"}},
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(out / "ckpt"), "save_top_k": -1, "every_n_train_steps": EVERY, "save_last": True}},
                {"class_path": "fireact.modules.rollout_callback.RolloutValidation",
                 "init_args": {"rollouts": {"tasks": ["synthetic"], "split": "dev", "n": 2, "max_turns": 2, "max_tokens": 12},
                               "data_dir": str(world)}},
                *callbacks,
            ],
        },
        "model": {"model": model_dir, "finetune": "lora", "lr": 0.02, "warmup": 1, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
        "data": {"class_path": "fireact.modules.datamodule.TrajectoryDataModule", "init_args": {"tokenizer": model_dir, "sources": [str(world / "synthetic/expert_train.jsonl")], "val_size": 2,
                 "batch_size": 3, "cutoff": 256, "data_dir": str(world)}},
    }  # fmt: skip
    path = out / "config.in.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(cfg: Path, *extra: str, fresh: bool = False) -> subprocess.CompletedProcess:
    """`python -m fireact.train fit`, forked by cli_runner (no second import of torch and Lightning);
    `fresh`: in a new interpreter, as a user runs it, printing a progress line every step."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "support")]),
           "FIREACT_PROGRESS_EVERY": "0"}  # fmt: skip
    cmd = [sys.executable, "-m", "fireact.train", "fit", "--config", str(cfg), *extra]
    return run_cli(cmd, env=env, timeout=600, fresh=fresh)


def losses(out: Path) -> dict[int, float]:
    """step -> train loss, over every version of the run (a resumed run logs into a new one)."""
    steps = {}
    for path in sorted(out.glob("run/version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    steps[int(row["step"])] = float(row["train/loss"])
    return steps


@pytest.fixture(scope="module")
def uninterrupted(world, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    proc = train(config(out, world, tiny_model_dir), fresh=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # what a user sees at the end: full paths, the curves PNG, no third-party deprecation noise
    plot = out / "run" / "version_0" / "rollout_curves.png"
    assert plot.stat().st_size > 0 and f"curves (EM and format errors by step): {plot.resolve()}" in proc.stdout
    assert f"checkpoints: last {(out / 'ckpt' / 'last.ckpt').resolve()}" in proc.stdout
    assert "is deprecated" not in proc.stderr and "eval mode at the start of training" not in proc.stderr
    assert "Setting accelerator to CPU" not in proc.stdout + proc.stderr  # DeepSpeed's notice
    # off a terminal: plain progress lines (here one per step), metric names in full, never squeezed
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("epoch ")]
    assert any(ln.startswith(f"epoch 1 step {MAX_STEPS}/{MAX_STEPS}: ") for ln in lines), proc.stderr[-2000:]
    assert all("steps/s, ETA" in ln for ln in lines) and any("train/loss " in ln for ln in lines)
    assert "rollouts synthetic: 2/2 episodes, EM so far" in proc.stderr and "…" not in proc.stderr
    return out


def test_sigkill_mid_epoch_resumes_to_the_same_curve(world, tiny_model_dir, uninterrupted, tmp_path):
    kill = {"class_path": "train_helpers.KillAt", "init_args": {"at_step": KILL_AT}}
    killed = train(config(tmp_path, world, tiny_model_dir, kill))
    assert killed.returncode == -9
    assert sorted(losses(tmp_path)) == list(range(KILL_AT))  # died before logging step 7
    resumed = train(config(tmp_path, world, tiny_model_dir), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr  # Lightning's warning for a loader that restarts the epoch
    want, got = losses(uninterrupted), losses(tmp_path)
    assert sorted(got) == sorted(want) == list(range(MAX_STEPS))
    for step in range(KILL_AT - 1, MAX_STEPS):  # from the checkpoint on: the same batches, the same updates
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), step
    a, b = (torch.load(d / "ckpt" / "last.ckpt", weights_only=False) for d in (uninterrupted, tmp_path))
    # the rollout validations (before training, steps 4 and 8; step 12's comes after its checkpoint)
    # are the killed run's and the resumed run's, not repeated at the resume
    fields = ("step", "tag", "em", "f1", "format_error_rate", "turns_mean")
    history = [[tuple(h[f] for f in fields) for h in c["callbacks"]["RolloutValidation"]["history"]] for c in (a, b)]
    assert [h[0] for h in history[1]] == [0, 4, 8] and history[0] == history[1]
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v)


def test_failed_checkpoint_write_keeps_the_previous_ones(world, tiny_model_dir, uninterrupted, tmp_path):
    """From step 7 no file may grow past 32 KB: the step-9 checkpoint (~57 KB) fails half-written."""
    limit = {"class_path": "train_helpers.FileSizeLimitAt", "init_args": {"at_step": KILL_AT, "max_bytes": 32_768}}
    proc = train(config(tmp_path, world, tiny_model_dir, limit))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot write checkpoint" in proc.stderr and "the checkpoints saved before it are intact" in proc.stderr
    saved = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert saved == ["epoch=0-step=3.ckpt", "epoch=0-step=6.ckpt", "last.ckpt"]  # no partial file left
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 6
    want = torch.load(uninterrupted / "ckpt" / "epoch=0-step=6.ckpt", weights_only=False)
    for k, v in want["state_dict"].items():
        torch.testing.assert_close(last["state_dict"][k], v)
