"""The training progress bar: Lightning's rich bar, with a step-bounded run described by its steps."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """A run bounded by `max_steps` has no epoch count (Lightning prints "Epoch 0/-2"): say "Epoch 0 ·
    30 steps"; the bar already counts the batches left within the step budget."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs not in (None, -1) or not trainer.max_steps or trainer.max_steps < 0:
            return super()._get_train_description(current_epoch)
        return f"Epoch {current_epoch} · {trainer.max_steps} steps"


def use_step_progress_bar(trainer) -> None:
    """Swap Lightning's default rich bar (not a user's own bar) for StepProgressBar."""
    trainer.callbacks = [StepProgressBar() if type(c) is RichProgressBar else c for c in trainer.callbacks]
