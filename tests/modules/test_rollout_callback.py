"""Live-rollout validation: the callback scores exactly what `fireact eval` scores for the same
weights and questions, with LoRA adapters used live, in one process and under DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fireact.cli import main
from fireact.data.synthetic import write_world
from fireact.data.trajectory import Trajectory, Turn, read_trajectories
from fireact.modules.rollout_metrics import RolloutMetrics
from fireact.rollout.config import RolloutConfig

ROOT = Path(__file__).resolve().parents[2]
N_DEV = 6
ROLLOUT_ARGS = {
    "tasks": ["synthetic"],
    "split": "dev",
    "n": N_DEV,
    "seed": 233,
    "max_turns": 3,
    "max_tokens": 24,
    "batch_size": 4,
}


def test_rollout_metrics_match_summarize():
    from fireact.data.evaluation import summarize

    trajs = [
        Trajectory(
            "q1", "a", "hotpotqa", "react", [Turn("t", "search[x]", "o"), Turn("t", "finish[a]")], "a", 1.0, 1.0
        ),
        Trajectory("q2", "b", "hotpotqa", "react", [Turn("t", "finish[c]")], "c", 0.0, 0.5),
        Trajectory("q3", "b", "hotpotqa", "react", [Turn("t", "search[x]", "o")] * 4, None, end_reason="max_turns"),
    ]
    m = RolloutMetrics()
    m.update(trajs[:2])
    m.update(trajs[2:])
    got, want = m.compute(), summarize(trajs)
    for key in ("em", "f1", "turns_mean", "turns_std", "format_error_rate"):
        assert float(got[key]) == pytest.approx(getattr(want, key))


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    """A tiny LoRA model with random (non-zero) adapter weights, validated once by the callback."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from fireact.modules.datamodule import TrajectoryDataModule
    from fireact.modules.lm_module import FireActLM
    from fireact.modules.rollout_callback import RolloutValidation

    tmp = tmp_path_factory.mktemp("rollout-callback")
    world = write_world(tmp / "world", n_people=30, n_dev=N_DEV)
    module = FireActLM(model=tiny_model_dir, finetune="lora", lora_r=8, lora_alpha=16)
    module.configure_model()
    torch.manual_seed(1)
    for name, p in module.model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # peft starts B at zero: make the adapter change the outputs
    dm = TrajectoryDataModule(
        tokenizer=tiny_model_dir,
        sources=[str(world / "synthetic/expert_train.jsonl")],
        val_size=2,
        batch_size=2,
        data_dir=str(world),
    )
    cb = RolloutValidation(RolloutConfig(**ROLLOUT_ARGS), data_dir=str(world))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(tmp / "logs"),
        callbacks=[cb],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(module, datamodule=dm)
    ckpt = tmp / "lora.ckpt"
    trainer.save_checkpoint(ckpt)
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp / "adapter")]) == 0
    return {"tmp": tmp, "world": world, "cb": cb, "ckpt": ckpt, "adapter": tmp / "adapter", "base": tiny_model_dir}


def run_eval(run, capsys, adapter: bool) -> tuple[dict, list[Trajectory]]:
    out = run["tmp"] / f"eval-{adapter}.jsonl"
    argv = [
        "eval",
        "--lm",
        f"hf:{run['base']}",
        "--task",
        "synthetic",
        "--split",
        "dev",
        "--n",
        str(N_DEV),
        "--seed",
        "233",
    ]
    argv += ["--max-turns", "3", "--max-tokens", "24", "--out", str(out), "--json", "--data-dir", str(run["world"])]
    if adapter:
        argv += ["--adapter", str(run["adapter"])]
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1]), read_trajectories(out)


def key(trajs: list[Trajectory]) -> list:
    return sorted((t.id, [(x.thought, x.action, x.observation) for x in t.turns], t.prediction) for t in trajs)


def test_callback_equals_fireact_eval_of_the_exported_adapter(lora_run, capsys):
    row = lora_run["cb"].history[-1]
    written = read_trajectories(row["file"])
    assert len(written) == N_DEV and row["episodes"] == N_DEV
    summary, trajs = run_eval(lora_run, capsys, adapter=True)
    assert key(written) == key(trajs)
    for k in ("em", "f1", "turns_mean", "turns_std", "format_error_rate"):
        assert row[k] == pytest.approx(summary[k]), k
    # a random model writes malformed steps: validation survived them and counted them
    assert row["format_error_rate"] > 0


def test_callback_used_the_lora_weights(lora_run, capsys):
    """Without the adapter the same base model acts differently: the callback's match above is not trivial."""
    _, base_only = run_eval(lora_run, capsys, adapter=False)
    assert key(base_only) != key(read_trajectories(lora_run["cb"].history[-1]["file"]))


def two_process_config(run: dict, out: Path, trainer: dict, val_size: int) -> dict:
    """A `python -m fireact.train` config: 2 CPU processes, the tiny LoRA model, the callback."""
    callback = {
        "class_path": "fireact.modules.rollout_callback.RolloutValidation",
        "init_args": {"rollouts": ROLLOUT_ARGS, "data_dir": str(run["world"])},
    }
    return {
        "trainer": {
            "accelerator": "cpu", "devices": 2, "enable_progress_bar": False, "default_root_dir": str(out), "callbacks": [callback],
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(out), "name": "run"}},
            **trainer,
        },
        "model": {"model": run["base"], "finetune": "lora", "lora_r": 8, "lora_alpha": 16},
        "data": {
            "class_path": "fireact.modules.datamodule.TrajectoryDataModule",
            "init_args": {"sources": [str(run["world"] / "synthetic/expert_train.jsonl")], "val_size": val_size, "batch_size": 2, "data_dir": str(run["world"])},
        },
    }  # fmt: skip


@pytest.mark.slow
def test_callback_under_ddp_equals_single_process(lora_run, capsys, tmp_path):
    """2 CPU processes (gloo): each rank plays a disjoint shard, metrics are summed across ranks."""
    run = lora_run
    config = two_process_config(run, tmp_path, {"strategy": "ddp"}, val_size=2)
    (tmp_path / "ddp.yaml").write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "fireact.train",
        "validate",
        "--config",
        str(tmp_path / "ddp.yaml"),
        "--ckpt_path",
        str(run["ckpt"]),
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    files = list(tmp_path.rglob("rollouts/*.jsonl"))
    assert len(files) == 1  # rank 0 writes all ranks' rollouts
    assert key(read_trajectories(files[0])) == key(read_trajectories(run["cb"].history[-1]["file"]))
    metrics = next(tmp_path.rglob("metrics.csv")).read_text().splitlines()
    header, values = metrics[0].split(","), metrics[-1].split(",")
    logged = {h: float(v) for h, v in zip(header, values) if h.startswith("val/") and v}
    row = run["cb"].history[-1]
    for k in ("em", "f1", "turns_mean", "turns_std", "format_error_rate"):
        assert logged[f"val/{k}"] == pytest.approx(row[k]), k


@pytest.mark.slow
def test_callback_under_zero3_gathers_weights_for_generation(lora_run, capsys, tmp_path):
    """ZeRO-3 shards every weight across 2 processes; the callback gathers them to generate. Before
    training the LoRA adapter is zero, so the rollouts must equal `fireact eval` of the base model."""
    run = lora_run
    zero3 = {
        "class_path": "fireact.modules.deepspeed_cpu.DeepSpeedCPUStrategy",
        "init_args": {"stage": 3, "exclude_frozen_parameters": True},
    }
    trainer = {"strategy": zero3, "max_steps": 1, "limit_val_batches": 0, "enable_checkpointing": False}
    config = two_process_config(run, tmp_path, trainer, val_size=0)
    (tmp_path / "zero3.yaml").write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "fireact.train", "fit", "--config", str(tmp_path / "zero3.yaml")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (before,) = tmp_path.rglob("rollouts/step000000_before.jsonl")
    _, base_only = run_eval(run, capsys, adapter=False)
    assert key(read_trajectories(before)) == key(base_only)
