"""GRPO teaches the agent beyond its imitation start, for real and small.

From the weak agent (`tests/support/weak_agent.py`: SmolLM2-135M stopped half-way through SFT, EM
about 0.5 on 12 held-out questions), GRPO (GRPOLM + QuestionDataModule, training questions disjoint
from the held-out dev ones) must raise live-rollout EM on the held-out questions by at least 0.3 in
3 steps. Each guard of GRPO was broken once while developing (docs/results/on_policy.md): the advantage sign
flipped, observation tokens trained, rewards shuffled across groups; each fails this test.
"""

from __future__ import annotations

import pytest
from weak_agent import HELD_OUT

from fireact.rollout.config import RolloutConfig

pytestmark = pytest.mark.slow(seconds=230)
STEPS = 3  # each broken guard fails at 3 (docs/results/on_policy.md)


def test_grpo_raises_live_rollout_em(weak_agent):
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from fireact.modules.grpo import GRPOLM
    from fireact.modules.questions import QuestionDataModule
    from fireact.modules.rollout_callback import RolloutValidation

    world, tmp = weak_agent["world"], weak_agent["tmp"]
    pl.seed_everything(0)
    module = GRPOLM(
        model=weak_agent["model"], init_adapter=str(weak_agent["adapter"]), lr=3e-4, warmup=0.0, group_size=4,
        data_dir=str(world), rollouts=RolloutConfig(temperature=0.7, max_turns=4, max_tokens=40, batch_size=16),
    )  # fmt: skip
    questions = QuestionDataModule(
        pool=RolloutConfig(tasks=["synthetic"], split="train", seed=0), questions_per_step=4, data_dir=str(world)
    )
    cb = RolloutValidation(HELD_OUT, before_training=False, data_dir=str(world))  # the start: played once a run
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=STEPS, val_check_interval=STEPS, check_val_every_n_epoch=None,
        num_sanity_val_steps=0, logger=CSVLogger(tmp, name="grpo"), log_every_n_steps=1, callbacks=[cb],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp,
    )  # fmt: skip
    trainer.fit(module, questions)
    before, after = weak_agent["start"], cb.history[-1]
    assert 0.2 <= before["em"] <= 0.6, f"the SFT start should be weak, got EM {before['em']:.2f}"
    assert after["em"] >= before["em"] + 0.3, f"GRPO moved held-out EM only {before['em']:.2f} -> {after['em']:.2f}"
    assert after["format_error_rate"] < before["format_error_rate"]
    import csv

    rows = [r for r in csv.DictReader(open(next(tmp.glob("grpo/*/metrics.csv")))) if r.get("train/ratio_mean")]
    assert len(rows) == STEPS
    # on-policy: the log-probs the engine recorded are the ones training recomputes (ratio 1)
    assert all(abs(float(r["train/ratio_mean"]) - 1) < 1e-3 for r in rows)
    assert all(0 < float(r["train/sampling_share"]) < 1 for r in rows)
    assert all(float(r["train/sampling_seconds"]) > 0 and float(r["train/training_seconds"]) > 0 for r in rows)
