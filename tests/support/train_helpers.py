"""A tiny deterministic data module with the TrajectoryDataModule batch contract, for training tests.

Rows are short token sequences drawn from a small slice of the vocabulary with a repeating pattern
(learnable in a few steps), right-padded, with a masked "prompt" prefix and masked padding.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class _Rows(Dataset):
    def __init__(self, rows: list[dict[str, torch.Tensor]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.rows[i]


def collate_rows(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack rows and add the counts every fireact batch carries (see fireact.data.batching.collate)."""
    batch = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    real = batch["attention_mask"].sum()
    batch["num_examples"] = torch.tensor(len(rows))
    batch["num_real_tokens"] = real
    batch["num_pad_tokens"] = batch["input_ids"].numel() - real
    batch["num_trained_tokens"] = (batch["labels"] != -100).sum()
    return batch


class EpochSeededSampler(Sampler):
    """Shuffles with (seed, epoch) rather than the global RNG, so a resumed run sees the same order."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at every epoch start
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(
            torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch)).tolist()
        )


def make_rows(n: int, seq_len: int, pad_id: int, seed: int, vocab_lo: int = 100, vocab_n: int = 24) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        length = int(torch.randint(seq_len // 2, seq_len + 1, (1,), generator=g))
        prompt = int(torch.randint(2, length // 2, (1,), generator=g))
        start = int(torch.randint(0, vocab_n, (1,), generator=g))
        ids = vocab_lo + (start + torch.arange(length) * 3) % vocab_n  # a pattern: next = prev + 3 (mod vocab_n)
        input_ids = torch.full((seq_len,), pad_id, dtype=torch.long)
        input_ids[:length] = ids
        attention_mask = torch.zeros(seq_len, dtype=torch.long)
        attention_mask[:length] = 1
        labels = input_ids.clone()
        labels[:prompt] = -100
        labels[length:] = -100
        position_ids = torch.arange(seq_len) * attention_mask
        rows.append(
            {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "position_ids": position_ids}
        )
    return rows


class RandomTokenDataModule(pl.LightningDataModule):
    """Deterministic synthetic trajectories; `tokenizer` only supplies the pad id (linked to model.model)."""

    def __init__(
        self,
        tokenizer: str = "",
        n_train: int = 32,
        n_val: int = 8,
        seq_len: int = 32,
        batch_size: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str) -> None:
        from fireact.lm.models import load_tokenizer

        pad_id = load_tokenizer(self.hparams.tokenizer).pad_token_id
        h = self.hparams
        self.train_rows = make_rows(h.n_train, h.seq_len, pad_id, h.seed)
        self.val_rows = make_rows(h.n_val, h.seq_len, pad_id, h.seed + 1)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(len(self.train_rows), self.hparams.seed)
        return DataLoader(
            _Rows(self.train_rows), batch_size=self.hparams.batch_size, sampler=sampler, collate_fn=collate_rows
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Rows(self.val_rows), batch_size=self.hparams.batch_size, collate_fn=collate_rows)


class PoisonWeights(pl.Callback):
    """Fills one trainable weight with NaN before training step `at_step` (to test the NaN stop)."""

    def __init__(self, at_step: int = 2) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(p for p in pl_module.parameters() if p.requires_grad).fill_(float("nan"))


def train_config(
    out,
    model_dir: str,
    finetune: str = "lora",
    strategy="auto",
    devices: int = 1,
    max_steps: int = 6,
    lr: float = 0.01,
    **extra,
) -> dict:
    """A small fit config (as a dict, dump it to YAML) for the tiny model and RandomTokenDataModule."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": devices,
            "strategy": strategy,
            "max_steps": max_steps,
            "log_every_n_steps": 1,
            "num_sanity_val_steps": 0,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(out),
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(out), "name": "run"},
            },
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {
                        "dirpath": str(out / "ckpt"),
                        "save_top_k": -1,
                        "every_n_train_steps": max_steps,
                        "save_last": False,
                    },
                }
            ],
        },
        "model": {"model": model_dir, "finetune": finetune, "lr": lr, "warmup": 1, "lora_r": 8, "lora_alpha": 16},
        "data": {
            "class_path": "train_helpers.RandomTokenDataModule",
            "init_args": {"n_train": 32, "n_val": 8, "seq_len": 32, "batch_size": 4},
        },
    }
    for key, value in extra.items():  # "trainer.max_epochs" -> config["trainer"]["max_epochs"]
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return config


def read_metrics(out) -> list[dict[str, float]]:
    import csv
    from pathlib import Path

    (path,) = Path(out).glob("run/version_*/metrics.csv")
    with open(path) as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def train_losses(out) -> list[float]:
    return [row["train/loss"] for row in read_metrics(out) if "train/loss" in row]


class KillAt(pl.Callback):
    """SIGKILLs its own process in training step `at_step`: at its start (after the checkpoint of the
    step before was written), or with `mid_step` just before its optimizer step (after a GRPO step has
    played and scored its episodes, before the update): a crash with no cleanup, as an OOM kill."""

    def __init__(self, at_step: int, mid_step: bool = False) -> None:
        self.at_step, self.mid_step = at_step, mid_step

    def _kill(self, trainer) -> None:
        if trainer.global_step == self.at_step:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.mid_step:
            self._kill(trainer)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.mid_step:
            self._kill(trainer)


class FileSizeLimitAt(pl.Callback):
    """From training step `at_step` on, no file of this process may grow past `max_bytes`
    (RLIMIT_FSIZE): a checkpoint write then fails part-way, as on a full disk."""

    def __init__(self, at_step: int, max_bytes: int) -> None:
        self.at_step, self.max_bytes = at_step, max_bytes

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            import resource
            import signal

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_bytes, resource.RLIM_INFINITY))


class RecordQuestions(pl.Callback):
    """Appends each finished step's question ids to `path` (JSON lines), to see what a run played."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        import json

        with open(self.path, "a") as f:
            f.write(json.dumps({"step": trainer.global_step, "ids": [q.id for q in batch]}) + "\n")
