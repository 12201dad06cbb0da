"""Checkpoints written to a temporary file and renamed into place: a save that fails part-way (a full
disk, a kill) leaves the previous checkpoint, `last.ckpt` included, whole. Lightning's own writer
opens the final path and writes into it, so a failed overwrite of `last.ckpt` loses it."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fireact.errors import FireactError


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if "://" in str(path):  # remote filesystems: fsspec's own semantics
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            with tmp.open("wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise FireactError(
                f"cannot write checkpoint {path} ({e.strerror or e}); the checkpoints saved before it are intact"
            ) from None


def use_atomic_checkpoints(trainer: Any) -> None:
    """Swap in the atomic writer where Lightning's plain one is in use (DeepSpeed writes its own)."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
