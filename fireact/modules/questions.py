"""Questions for on-policy training (GRPO, expert iteration): a pool that never meets the evaluation.

The pool is a task split (by default `hotpotqa/train`: the questions of FireAct's HotpotQA fine-tuning
trajectories, whose searches the offline snapshot holds). Before training, every pool question is
checked against the evaluated ones, the `exclude` selections (e.g. the 100 scored dev questions) and
the questions of every `RolloutValidation` callback on the trainer; any overlap stops the run.
"""

from __future__ import annotations

import random
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from fireact.data.paths import resolve_data_dir
from fireact.data.prompt_style import PromptStyle
from fireact.data.tasks import Example
from fireact.data.trajectory import question_key
from fireact.errors import FireactError
from fireact.modules.resumable import shuffled_loader
from fireact.modules.rollout_callback import RolloutValidation
from fireact.rollout.config import RolloutConfig


def evaluated_questions(selections: list[RolloutConfig], data_dir: Any) -> dict[str, str]:
    """question key -> "task/split" for every question the selections evaluate."""
    return {
        question_key(e.question): f"{task}/{sel.split}" if sel.env is None else task
        for sel in selections
        for task in sel.task_names(data_dir)
        for e in sel.examples(task, data_dir)
    }


class QuestionDataModule(LightningDataModule):
    """Batches of questions (each rank its own share under DDP) from a pool disjoint from evaluation.

    Args:
        pool: the training questions (its tasks, split, n, seed, offset; default hotpotqa/train).
        questions_per_step: questions per training step per rank (each is played G times).
        exclude: evaluated selections the pool must not touch (default: the first 100 questions of the
            paper's dev selection of each pool task, the scored ones of docs/results/reproduction.md; none for
            an environment's pool); RolloutValidation's questions are always added.
        format: the prompt format (default: the init adapter's saved style, see FireActLM).
        seed: shuffles the pool between epochs.
        data_dir: FireAct data dir (default: $FIREACT_DATA_DIR).
    """

    def __init__(
        self,
        pool: RolloutConfig | None = None,
        questions_per_step: int = 4,
        exclude: list[RolloutConfig] | None = None,
        format: str | None = None,
        seed: int = 0,
        data_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.pool = pool or RolloutConfig(split="train")
        default = [] if self.pool.env is not None else [RolloutConfig(tasks=self.pool.tasks, n=100)]
        self.exclude = exclude if exclude is not None else default
        self.questions_per_step, self.seed, self.data_dir = questions_per_step, seed, data_dir
        self.format = format
        if questions_per_step < 1:
            raise FireactError("data.questions_per_step must be at least 1")
        self.questions: list[Example] | None = None

    @property
    def prompt_style(self) -> PromptStyle | None:
        return PromptStyle(self.format) if self.format else None

    def setup(self, stage: str | None = None) -> None:
        if self.questions is not None:
            return
        root = resolve_data_dir(self.data_dir, must_exist=self.pool.env is None)
        pool = self.pool.all_examples(root)
        if not pool:
            raise FireactError(f"data.pool selects no questions ({', '.join(self.pool.tasks)}/{self.pool.split})")
        if self.pool.env is None and any(e.answer is None for e in pool):
            raise FireactError(f"data.pool {self.pool.split} has no gold answers: on-policy training needs rewards")
        self.check_disjoint(pool, root)
        self.questions = pool

    def check_disjoint(self, pool: list[Example], root: Any) -> None:

        selections = list(self.exclude)
        trainer = self.trainer
        if trainer is not None:
            selections += [cb.config for cb in trainer.callbacks if isinstance(cb, RolloutValidation)]
        evaluated = evaluated_questions(selections, root)
        shared = [q for q in pool if question_key(q.question) in evaluated]
        if shared:
            q = shared[0]
            raise FireactError(
                f"{len(shared)} training questions are also evaluated (e.g. {q.task} {q.id!r} "
                f"{q.question[:80]!r}, evaluated in {evaluated[question_key(q.question)]}): "
                "choose a pool disjoint from data.exclude and the RolloutValidation questions"
            )

    def train_dataloader(self) -> DataLoader:
        if self.questions is None:
            raise FireactError("QuestionDataModule.setup() has not run")
        return shuffled_loader(self.questions, self.seed, self.trainer, batch_size=self.questions_per_step,
                               collate_fn=list)  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        """One item, so Lightning runs its validation loop: RolloutValidation scores held-out questions there."""
        if self.questions is None:
            raise FireactError("QuestionDataModule.setup() has not run")
        first = random.Random(self.seed).choice(self.questions)
        return DataLoader([first], batch_size=1, collate_fn=list)
