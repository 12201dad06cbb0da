"""Training progress: Lightning's rich bar on a terminal (a step-bounded run described by its steps);
off one (CI logs, nohup, `| tee`), a plain line at least every 30 s with the step, the logged metrics
under their full names, throughput and ETA, instead of a rich bar that prints nothing until the end."""

from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from rich.console import Console

from fireact.rollout.progress import EVERY_S, eta


class StepProgressBar(RichProgressBar):
    """A run bounded by `max_steps` has no epoch count (Lightning prints "Epoch 0/-2"): say "Epoch 0 ·
    30 steps"; the bar already counts the batches left within the step budget."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs not in (None, -1) or not trainer.max_steps or trainer.max_steps < 0:
            return super()._get_train_description(current_epoch)
        return f"Epoch {current_epoch} · {trainer.max_steps} steps"


class PlainProgressBar(ProgressBar):
    """One line on stderr per `every` seconds of training (and at the end of each epoch), rank 0 only."""

    def __init__(self, every: float = EVERY_S):
        super().__init__()
        self.every, self._enabled = every, True
        self.start = self.last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = self.last = time.monotonic()
        self.first_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if time.monotonic() - self.last >= self.every:
            self._line(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._line(trainer, pl_module)

    def _line(self, trainer, pl_module) -> None:
        self.last = now = time.monotonic()
        if not (self._enabled and trainer.is_global_zero):
            return
        step, total = (
            trainer.global_step,
            trainer.max_steps if trainer.max_steps > 0 else trainer.estimated_stepping_batches,
        )
        done = step - self.first_step
        metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num")  # fmt: skip
        rate = done / max(now - self.start, 1e-9)
        print(f"epoch {trainer.current_epoch} step {step}/{int(total)}: {metrics}; {rate:.2f} steps/s, "
              f"ETA {eta(done, int(total) - self.first_step, now - self.start)}", file=sys.stderr, flush=True)  # fmt: skip


def use_step_progress_bar(trainer) -> None:
    """Swap Lightning's default rich bar (not a user's own bar) for StepProgressBar on a terminal, or
    PlainProgressBar off one."""
    plain = not Console(stderr=True).is_terminal
    trainer.callbacks = [
        (PlainProgressBar() if plain else StepProgressBar()) if type(c) is RichProgressBar else c
        for c in trainer.callbacks
    ]
