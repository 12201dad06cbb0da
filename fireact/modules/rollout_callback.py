"""Live agent rollouts as validation: the model being trained answers questions as a zero-shot
ReAct agent with the search tool, and val/em is what ModelCheckpoint can keep the best of.

The model is used in place (LoRA adapters live, no merge, no copy to disk), in eval mode without
gradients, through the same rollout engine as `fireact eval`, so both give the same EM for the
same weights. Each rank plays a disjoint shard of the questions; metrics are summed over ranks
(under ZeRO-3 every rank plays all of them in lockstep, see `run`).
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.utilities import rank_zero_info

from fireact.data.paths import resolve_data_dir
from fireact.data.trajectory import Trajectory, write_trajectories
from fireact.lm.hf import HFLM
from fireact.modules.datamodule import trainer_prompt_style
from fireact.modules.ranks import gather_on_rank0, max_over_ranks, zero3
from fireact.modules.rollout_metrics import RolloutMetrics
from fireact.rollout.config import RolloutConfig
from fireact.rollout.progress import rich_progress
from fireact.rollout.runners import run_rollouts


class RolloutValidation(Callback):
    """Run rollouts on the questions `rollouts` selects (the paper's seeded selection; 20 HotpotQA dev
    questions by default) at every `every_n_validations`-th validation, and once before training
    when `before_training`. The prompt format is the DataModule's unless `rollouts.format` says
    otherwise, so a config states it once."""

    def __init__(
        self,
        rollouts: RolloutConfig | None = None,
        every_n_validations: int = 1,
        before_training: bool = True,
        data_dir: str | None = None,
    ) -> None:
        self.config = rollouts or RolloutConfig(n=20)
        self.every_n_validations, self.before_training = every_n_validations, before_training
        self.data_dir = data_dir
        self.history: list[dict[str, Any]] = []  # one row per rollout validation: step, task, metrics, file
        self._validations = 0
        self._fit_started = time.perf_counter()

    # --- hooks ---------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.perf_counter()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        if trainer.is_global_zero and self.history:
            print_fit_summary(trainer, self.history, time.perf_counter() - self._fit_started, log_dir)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.before_training and trainer.global_step == 0:  # not again when resuming a run
            metrics = self.run(trainer, pl_module, tag="before")
            if trainer.logger is not None and trainer.is_global_zero:
                trainer.logger.log_metrics(metrics, step=trainer.global_step)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if self._validations % self.every_n_validations:
            return
        for name, value in self.run(trainer, pl_module).items():
            pl_module.log(name, value, rank_zero_only=False, sync_dist=False)  # already reduced

    # --- the rollouts --------------------------------------------------------------------------
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, tag: str | None = None) -> dict[str, float]:
        model, tokenizer = pl_module.model, pl_module.tokenizer
        cfg = self.config
        data_dir = resolve_data_dir(self.data_dir, must_exist=cfg.env is None)
        tool = cfg.make_tool(data_dir)
        lm = HFLM(
            model, tokenizer, name=f"hf:{type(model).__name__}@step{trainer.global_step}",
            prompt_style=getattr(pl_module, "prompt_style", None) or trainer_prompt_style(trainer),
        )  # fmt: skip
        # ZeRO-3 gathers each module's weights inside every forward, a collective: all ranks must make
        # the same calls, so each plays every question in lockstep (greedy decoding keeps them equal),
        # at world_size times the compute. Otherwise each rank plays a disjoint shard.
        lockstep = zero3(trainer)
        rank, world = (0, 1) if lockstep else (trainer.global_rank, trainer.world_size)
        tasks = cfg.task_names(data_dir)
        examples = [e for task in tasks for e in cfg.examples(task, data_dir)[rank::world]]
        was_training = model.training
        model.eval()
        _return_freed_heap()
        try:
            start = time.perf_counter()
            with torch.no_grad(), _progress(trainer, f"rollouts {', '.join(tasks)}", len(examples)) as report:
                trajs = run_rollouts(
                    lm, tool, examples, cfg, progress=report, source=f"rollout-validation step {trainer.global_step}"
                )
            seconds = max_over_ranks(trainer, time.perf_counter() - start)
        finally:
            model.train(was_training)
            _return_freed_heap()  # and the engine's, before training goes on
        out = {"val/rollout_seconds": seconds}
        for task in tasks:
            out.update(self._score(trainer, task, [t for t in trajs if t.task == task], lockstep, tag, seconds))
        if len(tasks) > 1:
            out["val/em"] = sum(out[f"val/{t}/em"] for t in tasks) / len(tasks)
        return out

    def _score(
        self, trainer: pl.Trainer, task: str, trajs: list[Trajectory], lockstep: bool, tag: str | None, seconds: float
    ) -> dict[str, float]:
        """One task's metrics (summed over ranks' shards), its file and its history row."""
        metrics = RolloutMetrics(sync_on_compute=not lockstep)
        metrics.update(trajs)
        values = {k: float(v) for k, v in metrics.compute().items()}
        path = self._write(trainer, task, trajs if lockstep else gather_on_rank0(trainer, trajs), tag)
        self.history.append({"step": trainer.global_step, "tag": tag, "task": task, **values, "rollout_seconds": seconds,
                             "file": str(path) if path else None})  # fmt: skip
        rank_zero_info(
            f"rollouts {task} at step {trainer.global_step}: EM {values['em']:.3f} F1 {values['f1']:.3f} "
            f"format errors {values['format_error_rate']:.1%} over {int(values['episodes'])} questions "
            f"({seconds:.0f}s) -> {path}"
        )
        prefix = "val/" if self.config.env is not None or len(self.config.tasks) == 1 else f"val/{task}/"
        return {f"{prefix}{k}": v for k, v in values.items() if k != "episodes"}

    def _write(self, trainer: pl.Trainer, task: str, trajs: list[Trajectory] | None, tag: str | None) -> Path | None:
        root = Path(trainer.log_dir or trainer.default_root_dir) / "rollouts"  # log_dir is a collective: all ranks
        if trajs is None or not trainer.is_global_zero:
            return None
        name = (
            f"step{trainer.global_step:06d}"
            + (f"_{tag}" if tag else "")
            + (f"_{task}" if len(self.config.tasks) > 1 else "")
        )
        trajs.sort(key=lambda t: t.id)
        write_trajectories(root / f"{name}.jsonl", trajs)
        return root / f"{name}.jsonl"

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "validations": self._validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history, self._validations = state["history"], state["validations"]


def _return_freed_heap() -> None:
    """Hand freed heap back to the OS between training and rollouts: glibc keeps freed memory mapped
    (about 0.6 GB after SmolLM2 LoRA steps, about as much after the engine's rollouts), and each phase's
    peak would stack on what the other left. A no-op off glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def print_fit_summary(trainer: pl.Trainer, history: list[dict[str, Any]], seconds: float, log_dir: str | None) -> None:
    """The end-of-run summary: rollout EM over training, time, and where things are (full paths, on
    their own lines: a table column would cut them)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fireact: live-rollout validation ({seconds / 60:.1f} min in all)")
    for col in ("step", "task", "EM", "F1", "turns", "format errors"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for h in history:
        step = f"{h['step']}" + (f" ({h['tag']})" if h["tag"] else "")
        table.add_row(
            step, h["task"], f"{100 * h['em']:.1f}", f"{100 * h['f1']:.1f}", f"{h['turns_mean']:.1f}",
            f"{100 * h['format_error_rate']:.0f}%",
        )  # fmt: skip
    console = Console(soft_wrap=True)
    console.print(table)
    files = [h["file"] for h in history if h["file"]]
    if files:
        console.print(f"rollouts: {Path(files[0]).parent.resolve()}/ (one JSONL per validation)")
    ckpt = trainer.checkpoint_callback
    if ckpt is not None:
        console.print(f"checkpoints: last {_full(ckpt.last_model_path)}; best {_full(ckpt.best_model_path)}")
    if log_dir:
        console.print(f"logs and metrics: {Path(log_dir).resolve()}")
        plot = plot_rollout_curves(history, Path(log_dir) / "rollout_curves.png")
        if plot is not None:
            console.print(f"curves (EM and format errors by step): {plot.resolve()}")


def _full(path: str | None) -> str:
    return str(Path(path).resolve()) if path else "-"


def plot_rollout_curves(history: list[dict[str, Any]], out: Path) -> Path | None:
    """EM and format-error rate of the live rollouts by training step, one line per task."""
    if len({h["step"] for h in history}) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for task in sorted({h["task"] for h in history}):
        rows = sorted((h["step"], h["em"], h["format_error_rate"]) for h in history if h["task"] == task)
        steps = [r[0] for r in rows]
        ax.plot(steps, [100 * r[1] for r in rows], "o-", label=f"{task} EM")
        ax.plot(steps, [100 * r[2] for r in rows], "s--", label=f"{task} format errors")
    ax.set_xlabel("training step")
    ax.set_ylabel("% of validation episodes")
    ax.set_ylim(-2, 102)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


@contextlib.contextmanager
def _progress(trainer: pl.Trainer, description: str, total: int):
    """Report into the trainer's rich progress display when there is one (rich allows one live
    display at a time), else a progress bar of our own on rank 0."""
    bar = trainer.progress_bar_callback
    progress = getattr(bar, "progress", None) if isinstance(bar, RichProgressBar) else None
    if progress is not None:
        task_id = progress.add_task(description, total=max(total, 1))
        try:
            yield lambda done, total, em=0.0: progress.update(task_id, completed=done, total=total)
        finally:
            progress.update(task_id, visible=False)
    elif trainer.is_global_zero and bar is not None:
        with rich_progress(description) as report:
            yield report
    else:
        yield None
