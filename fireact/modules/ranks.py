"""What the ranks of a run share: sums, maxima, gathered objects, summed gradients, ZeRO-3's lockstep.

One home for the collectives the callback and GRPO need; each is a no-op on one process. Tensors
go to the strategy's device first (NCCL reduces GPU tensors only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist


def zero3(trainer: pl.Trainer) -> bool:
    """ZeRO-3 gathers each module's weights inside every forward, a collective: all ranks must make
    the same calls (e.g. play the same questions in lockstep)."""
    config = getattr(trainer.strategy, "config", None) or {}
    return config.get("zero_optimization", {}).get("stage") == 3


def _reduce(trainer: pl.Trainer, value: float, op: dist.ReduceOp) -> float:
    if trainer.world_size == 1:
        return value
    t = torch.tensor(float(value), dtype=torch.float64, device=trainer.strategy.root_device)
    dist.all_reduce(t, op=op)
    return float(t)


def sum_over_ranks(trainer: pl.Trainer, value: float) -> float:
    return _reduce(trainer, value, dist.ReduceOp.SUM)


def max_over_ranks(trainer: pl.Trainer, value: float) -> float:
    return _reduce(trainer, value, dist.ReduceOp.MAX)


def gather_on_rank0(trainer: pl.Trainer, items: list[Any]) -> list[Any] | None:
    """Every rank's items on rank 0, rank after rank (None on the others)."""
    if trainer.world_size == 1:
        return list(items)
    parts: list[Any] | None = [None] * trainer.world_size if trainer.is_global_zero else None
    dist.gather_object(items, parts, dst=0)
    return [x for part in parts for x in part] if parts is not None else None


def sum_grads_over_ranks(trainer: pl.Trainer, params: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce the trainable parameters' gradients once (a rank without a backward pass adds zeros)."""
    if trainer.world_size == 1:
        return
    for p in params:
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
