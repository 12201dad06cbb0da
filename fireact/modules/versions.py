"""The library versions a run ran with, saved beside its config.yaml: the same config gave EM 14 and
EM 10 across a transformers upgrade, so a result is only comparable with its versions."""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from lightning.pytorch.cli import SaveConfigCallback

VERSIONS_FILE = "versions.json"
LIBRARIES = ("fireact", "torch", "transformers", "peft", "lightning", "deepspeed", "datasets", "bm25s", "tokenizers",
             "accelerate", "openai")  # fmt: skip


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


class SaveConfigAndVersions(SaveConfigCallback):
    """Lightning's config.yaml, and versions.json beside it (written by rank zero)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        log_dir = trainer.log_dir  # on every rank: it is a broadcast (asked by rank 0 alone, DDP hangs)
        if trainer.is_global_zero and log_dir:
            path = Path(log_dir) / VERSIONS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(library_versions(), indent=1) + "\n")
