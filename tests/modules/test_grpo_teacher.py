"""GRPO's teacher term (DGPO's fallback where reward is rare), in the real wiki world: each question
none of whose samples was rewarded gets a gold-path demonstration, trained by its SFT loss beside the
policy loss; a pool without supporting titles is refused before any sampling."""

from __future__ import annotations

import csv

import pytest

from fireact.errors import FireactError
from fireact.rollout.config import RolloutConfig

pytestmark = pytest.mark.slow(seconds=5)


def fit(tmp_path, module, pool: RolloutConfig, data_dir, steps: int):
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from fireact.modules.questions import QuestionDataModule

    questions = QuestionDataModule(pool=pool, questions_per_step=4, data_dir=str(data_dir))
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, limit_val_batches=0, logger=CSVLogger(tmp_path, name="grpo"),
        log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, questions)
    return [r for r in csv.DictReader(open(next(tmp_path.glob("grpo/*/metrics.csv")))) if r.get("train/loss")]


def test_gold_path_term_teaches_the_demonstrations(tiny_model_dir, data_dir, tmp_path):
    import lightning.pytorch as pl

    from fireact.modules.grpo import GRPOLM

    pl.seed_everything(0)
    module = GRPOLM(
        model=tiny_model_dir, finetune="full", lr=1e-2, warmup=0.0, group_size=2, gold_path_coef=1.0, data_dir=str(data_dir),
        rollouts=RolloutConfig(tool="wiki", temperature=1.0, max_turns=1, max_tokens=8, batch_size=8),
    )  # fmt: skip
    rows = fit(tmp_path, module, RolloutConfig(tasks=["hotpotqa"], split="wiki-train"), data_dir, steps=6)
    assert len(rows) == 6
    # a random tiny model answers nothing right: every question whose gold pages the tool returns is taught
    assert all(float(r["train/em"]) == 0 and float(r["train/gold_paths"]) >= 2 for r in rows)
    # every group's rewards are equal (all 0): the policy term gives no gradient, so what moves is the teacher's
    assert all(float(r["train/zero_advantage_groups"]) == 1 and float(r["train/loss"]) == 0 for r in rows)
    nll = [float(r["train/gold_path_nll"]) for r in rows]  # each step's demonstrations are of new questions
    assert nll[-1] < nll[0] - 1.0, f"the demonstrations' NLL did not fall: {nll}"


def test_gold_path_term_needs_supporting_titles(tiny_model_dir, tmp_path):
    from fireact.data.synthetic import write_world
    from fireact.modules.grpo import GRPOLM

    world = write_world(tmp_path / "world", n_people=20, n_dev=4)
    with pytest.raises(FireactError, match="model.gold_path_coef must be >= 0"):
        GRPOLM(model=tiny_model_dir, gold_path_coef=-1.0)
    module = GRPOLM(model=tiny_model_dir, group_size=2, gold_path_coef=1.0, data_dir=str(world))
    with pytest.raises(FireactError, match="gold_path_coef needs HotpotQA's supporting titles.*split 'train'"):
        fit(tmp_path, module, RolloutConfig(tasks=["synthetic"], split="train"), world, steps=1)
