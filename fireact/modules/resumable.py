"""A shuffled loader that Lightning checkpoints and restores mid-epoch (SFT data and on-policy questions).

Lightning resumes a plain loader at the start of its epoch and repeats the batches the killed run had
already trained on; this one starts where the killed run stopped, in the same order.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class ResumableShuffle(Sampler[int]):
    """A shuffle drawn from (seed, epoch) alone, which can start part-way into an epoch: a run resumed
    from a mid-epoch checkpoint sees the items the killed run had not reached, in the same order
    (a generator-driven shuffle restarts at the first epoch's order and repeats the epoch's items)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.resume_epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it at every epoch start
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        skip = self.skip if self.epoch == self.resume_epoch else 0
        self.skip = 0  # once: the next epochs start at their beginning
        return iter(order[skip:].tolist())


class ResumableLoader(DataLoader):
    """A loader over a ResumableShuffle whose state is the trainer's count of batches done this epoch
    (the sampler itself runs ahead by the prefetch), so Lightning saves and restores its position."""

    def __init__(self, *args: Any, trainer: Any = None, **kwargs: Any) -> None:
        # the DataLoader's own signature: Lightning re-creates a loader from its arguments (sampler injection)
        super().__init__(*args, **kwargs)
        self.trainer = trainer

    def state_dict(self) -> dict[str, int]:
        if self.trainer is None:
            return {}
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": self.trainer.current_epoch, "batches_done": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        items = state.get("batches_done", 0) * (self.batch_size or 1)
        # an epoch-end checkpoint resumes at the next epoch's start: nothing to skip
        self.sampler.resume_epoch, self.sampler.skip = state.get("epoch", 0), items if items < len(self.sampler) else 0


def shuffled_loader(dataset: Any, seed: int, trainer: Any, **kwargs: Any) -> DataLoader:
    """The training loader of both DataModules. One process: a ResumableLoader, so a run killed
    mid-epoch resumes at the next unseen item. Several (DDP, DeepSpeed): a seeded plain shuffle, which
    Lightning shards with a (seed, epoch) DistributedSampler: exact resumes at epoch ends, while a
    mid-epoch resume repeats that epoch's items (Lightning warns)."""
    if trainer is not None and trainer.world_size > 1:
        return DataLoader(dataset, shuffle=True, generator=torch.Generator().manual_seed(seed), **kwargs)
    return ResumableLoader(dataset, sampler=ResumableShuffle(len(dataset), seed), trainer=trainer, **kwargs)
