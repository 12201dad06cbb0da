"""The weak agent the on-policy proofs start from, made the way FireAct makes one: SmolLM2-135M
LoRA-tuned on a few expert trajectories of the synthetic world, stopped half-way, so it answers about
half of the held-out questions and botches the format on the rest (docs/results/on_policy.md)."""

from __future__ import annotations

import os
from pathlib import Path

from fireact.data.synthetic import write_world
from fireact.rollout.config import RolloutConfig

HELD_OUT = RolloutConfig(tasks=["synthetic"], n=12, seed=None, max_turns=4, max_tokens=40, batch_size=12)
SFT = {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "lr": 1e-3, "warmup": 0.1}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def build_weak_agent(tmp: Path, smollm2_dir: str) -> dict:
    """SFT on 8 expert trajectories, a 20-step schedule stopped at step 10: EM about 0.5."""
    import lightning.pytorch as pl
    import torch

    from fireact.modules.datamodule import TrajectoryDataModule
    from fireact.modules.export import export
    from fireact.modules.lm_module import FireActLM

    world = write_world(tmp / "world", n_people=60, n_dev=12, seed=7)
    experts = (world / "synthetic/expert_train.jsonl").read_text().splitlines()[:9]
    (tmp / "few.jsonl").write_text("\n".join(experts) + "\n")

    class StopAt(pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            trainer.should_stop = trainer.global_step >= 10

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 2))  # 1 under xdist (conftest)
    pl.seed_everything(0)
    dm = TrajectoryDataModule(
        tokenizer=smollm2_dir, sources=[str(tmp / "few.jsonl")], cutoff=256, val_size=1, batch_size=2, seed=3,
        data_dir=str(world), run_dir=str(tmp),
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=20, limit_val_batches=0, logger=False, callbacks=[StopAt()],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp,
    )  # fmt: skip
    trainer.fit(FireActLM(model=smollm2_dir, lora_target_modules=TARGETS, **SFT), dm)
    trainer.save_checkpoint(tmp / "sft.ckpt")
    export(tmp / "sft.ckpt", tmp / "sft")
    return weak_agent_at(tmp, smollm2_dir)


def weak_agent_at(tmp: Path, smollm2_dir: str) -> dict:
    """The paths of the weak agent `build_weak_agent(tmp, ...)` built, and its held-out start."""
    return {
        "tmp": tmp,
        "world": tmp / "world",
        "adapter": tmp / "sft",
        "experts": tmp / "few.jsonl",
        "model": smollm2_dir,
        "start": held_out_start(tmp),
    }


def held_out_start(tmp: Path) -> dict:
    """The weak agent's greedy EM and format-error rate on HELD_OUT: what both proofs start from,
    played once per test run (kept in `tmp`) rather than once per proof."""
    import json

    import torch

    from fireact.data.evaluation import summarize
    from fireact.lm.hf import HFLM
    from fireact.rollout.runners import run_rollouts

    saved = tmp / "held_out_start.json"
    if not saved.is_file():
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 2))
        world = tmp / "world"
        lm = HFLM(str(tmp / "sft"), name="hf:weak-agent")
        trajs = run_rollouts(lm, HELD_OUT.make_tool(world), HELD_OUT.all_examples(world), HELD_OUT)
        summary = summarize(trajs, expected=HELD_OUT.n)
        saved.write_text(json.dumps({"em": summary.em, "format_error_rate": summary.format_error_rate}))
    return json.loads(saved.read_text())
