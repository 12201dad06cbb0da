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
    """Lightning's config.yaml, and versions.json beside it (rank zero)."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        if trainer.log_dir:
            path = Path(trainer.log_dir) / VERSIONS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(library_versions(), indent=1) + "\n")
