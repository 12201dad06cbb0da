"""LightningDataModule: trajectory sources -> task x method mix -> masked, batched training data.

Every rank runs the same deterministic setup; batches are planned once (length-grouped or packed)
and served as items of a map-style dataset, so Lightning's DistributedSampler gives each rank a
disjoint share with the same number of batches under DDP and DeepSpeed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from fireact.data.batching import Batch, collate, length_grouped_batches, packed_batches, padding_fraction
from fireact.data.encoding import encode
from fireact.data.mixing import CellPlan, cell_of, heldout_split, plan_mix, validate_mix
from fireact.data.paths import resolve_data_dir
from fireact.data.prompt_style import PromptStyle
from fireact.data.sources import Source, load_source, resolve_source, task_questions
from fireact.data.token_log import training_rows
from fireact.data.token_row import TokenRow
from fireact.data.trajectory import Trajectory
from fireact.errors import FireactError
from fireact.lm.models import load_tokenizer
from fireact.modules.resumable import shuffled_loader

PROVENANCE_FILE = "data_provenance.json"


def unwrap_planned_batch(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """collate_fn for DataLoader(batch_size=1) over planned batches. batch_size=1 (not None) keeps a
    plain BatchSampler, which Lightning re-creates around its DistributedSampler and DeepSpeed reads."""
    (batch,) = items
    return batch


class PlannedBatches(Dataset):
    """Item i is the i-th planned batch, already collated."""

    def __init__(self, rows: list[TokenRow], batches: list[Batch], pad_id: int, packed: bool):
        self.rows, self.batches = rows, batches
        self.pad_id, self.packed = pad_id, packed

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return collate(self.rows, self.batches[i], self.pad_id, self.packed)


def _sft_row(row: TokenRow, cutoff: int) -> TokenRow:
    """A sampled row as SFT trains it: cut at the cutoff, its sampling log-probs not needed."""
    return TokenRow(row.input_ids[:cutoff], row.trained[:cutoff], cut=max(len(row) - cutoff, 0))


def trainer_prompt_style(trainer: Any) -> PromptStyle | None:
    """The prompt style of the data a trainer trains on (None when its DataModule declares none)."""
    style = getattr(trainer.datamodule, "prompt_style", None)
    return style if isinstance(style, PromptStyle) else None


class TrajectoryDataModule(LightningDataModule):
    """Mixes trajectories by (task, method) cell and serves masked training batches.

    Args:
        tokenizer: model name or path ("smollm2-135m" is the offline default).
        sources: trajectory JSONL or FireAct release files; relative paths not found as given are
            looked up in the data dir (e.g. "finetune/gpt_format/hotpotqa.jsonl").
        mix: cell "task/method" -> int count or float fraction of the total (rule in
            fireact.data.mixing); None trains on every trajectory once.
        mix_total: the total that fractions refer to (default: derived, see fireact.data.mixing).
        format: "chat" (the tokenizer's chat template) or "alpaca" (FireAct's alpaca prompt).
        protocol: "react" (FireAct's `Action: search[...]` steps) or "tool-calls" (JSON tool calls,
            `fireact.data.tool_calls`; chat format): saved with the weights like the format.
        cutoff: max tokens per example (the paper: 512).
        truncation: "truncate" cuts longer examples at the cutoff, "drop" leaves them out; both
            are counted per cell in the provenance card.
        val_size: held-out questions for validation loss: an int count or a float fraction of the
            distinct questions; no question is in both splits.
        batch_size: sequences per batch (packed rows when packing).
        packing: pack several examples per row of `cutoff` tokens (block-diagonal attention,
            position ids reset per example) instead of length-grouped padded batches.
        seed: drives the held-out split, the mix sampling and the batch plan.
        num_workers: DataLoader workers.
        data_dir: FireAct data dir (default: $FIREACT_DATA_DIR, then the cache dir).
        run_dir: where data_provenance.json goes when no trainer log dir is available.
        only_successful: keep only trajectories with reward > 0 (FireAct's release is already the
            paper's selection, so the default keeps everything).
        mask_observations: True (default) trains on the agent's thoughts/actions only; False also
            on the observations between them, as FireAct's released runs did (never on the question
            or prompt). `fireact mask-audit --no-mask-observations` shows the difference.
    """

    def __init__(
        self,
        tokenizer: str = "smollm2-135m",
        sources: list[str] | None = None,
        mix: dict[str, int | float] | None = None,
        mix_total: int | None = None,
        format: Literal["chat", "alpaca"] = "chat",
        protocol: Literal["react", "tool-calls"] = "react",
        cutoff: int = 512,
        truncation: Literal["truncate", "drop"] = "truncate",
        val_size: int | float = 0.05,
        batch_size: int = 8,
        packing: bool = False,
        seed: int = 42,
        num_workers: int = 0,
        data_dir: str | None = None,
        run_dir: str | None = None,
        only_successful: bool = False,
        mask_observations: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer_name = tokenizer
        self.sources = list(sources or ["finetune/gpt_format/hotpotqa.jsonl"])
        self.mix, self.mix_total = (validate_mix(mix) if mix is not None else None), mix_total
        self.format, self.protocol, self.cutoff, self.truncation = format, protocol, cutoff, truncation
        PromptStyle(format, protocol=protocol)  # refuses a protocol the format cannot render, before any work
        self.val_size, self.batch_size, self.packing = val_size, batch_size, packing
        self.seed, self.num_workers = seed, num_workers
        self.data_dir, self.run_dir, self.only_successful = data_dir, run_dir, only_successful
        self.mask_observations = mask_observations
        if truncation not in ("truncate", "drop"):
            raise FireactError(f"data.truncation must be 'truncate' or 'drop', got {truncation!r}")
        if cutoff < 1 or batch_size < 1:
            raise FireactError(f"data.cutoff and data.batch_size must be positive, got {cutoff!r} and {batch_size!r}")
        self.tokenizer: Any = None
        self.train_set: PlannedBatches | None = None
        self.val_set: PlannedBatches | None = None
        self.provenance: dict[str, Any] | None = None

    @property
    def prompt_style(self) -> PromptStyle:
        """The format the model is trained on: saved with its checkpoints, used by the rollout callback."""
        return PromptStyle(self.format, base_model=self.tokenizer_name, protocol=self.protocol)

    # -- setup -----------------------------------------------------------------------------------
    def _load_sources(self) -> list[Source]:
        root = resolve_data_dir(self.data_dir, must_exist=False)
        root = root if root.is_dir() else None
        paths = [resolve_source(s, root) for s in self.sources]
        known = task_questions(root) if root is not None else {}
        return [load_source(p, known) for p in paths]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        started = time.perf_counter()
        sources = self._load_sources()  # first: a bad file is named before a tokenizer is loaded
        self.tokenizer = load_tokenizer(self.tokenizer_name)
        trajs: list[Trajectory] = []
        skipped: Counter[str] = Counter()
        for src in sources:
            for t in src.trajectories:
                if not t.turns:
                    skipped["no turns"] += 1
                elif self.only_successful and t.score <= 0:
                    skipped["unsuccessful"] += 1
                else:
                    trajs.append(t)
        if not trajs:
            raise FireactError(f"no usable trajectories in {', '.join(map(str, self.sources))}")
        if self.mix is not None:  # cells the mix leaves out are never encoded
            wanted = {c for c, v in self.mix.items() if v}
            skipped["not in mix"] = sum(1 for t in trajs if cell_of(t) not in wanted)
            trajs = [t for t in trajs if cell_of(t) in wanted]
            if not trajs:
                raise FireactError(f"the sources hold none of the mix cells {', '.join(sorted(wanted))}")
        train_pool, val_pool = heldout_split(trajs, self.val_size, self.seed)
        rows = self._rows(trajs)
        over = {i for i, rs in enumerate(rows) if any(r.truncated for r in rs)}
        dropped: Counter[str] = Counter()
        if self.truncation == "drop":
            for i in over:
                dropped[cell_of(trajs[i])] += 1
            train_pool = [i for i in train_pool if i not in over]
            val_pool = [i for i in val_pool if i not in over]
        plans = plan_mix(trajs, train_pool, self.mix, self.seed, self.mix_total)
        train_idx = [i for p in plans for i in p.indices]
        mixed_cells = {p.cell for p in plans if p.requested > 0}
        val_idx = [i for i in val_pool if cell_of(trajs[i]) in mixed_cells]
        if not train_idx:
            raise FireactError("the mix selects no training trajectories")

        self.train_set = self._planned(rows, train_idx)
        self.val_set = self._planned(rows, val_idx) if val_idx else None
        self.train_indices, self.val_indices, self.trajectories = train_idx, val_idx, trajs
        self.provenance = self._provenance(sources, trajs, plans, val_idx, rows, over, dropped, skipped)
        self.provenance["setup_seconds"] = round(time.perf_counter() - started, 3)
        self._report()

    def _rows(self, trajs: list[Trajectory]) -> list[list[TokenRow]]:
        """Each trajectory's token rows: the ids its rollout sampled when it recorded them zero-shot in
        this style (on-policy SFT trains exactly those, never a re-tokenization), else its rendered
        text (a few-shot episode is trained as the fine-tuned agent is prompted: without exemplars)."""
        style = self.prompt_style

        def sampled(t: Trajectory) -> bool:
            same_style = t.meta.get("fmt") == style.format and t.meta.get("protocol", "react") == style.protocol
            return bool(t.token_turns) and same_style and not t.meta.get("few_shot")

        to_render = [t for t in trajs if not sampled(t)]  # one batched encode for the others, not for all
        rendered = iter(encode(to_render, self.tokenizer, style, self.cutoff, self.mask_observations))
        return [[_sft_row(r, self.cutoff) for r in training_rows(t.token_turns)] if sampled(t) else [next(rendered)]
                for t in trajs]  # fmt: skip

    def _planned(self, rows: list[list[TokenRow]], idx: list[int]) -> PlannedBatches:
        """Plan the batches once (seeded); epochs reshuffle their order, not their content."""
        sub = [r for i in idx for r in rows[i]]
        lengths = [len(r) for r in sub]
        if self.packing:
            batches = packed_batches(lengths, self.batch_size, self.cutoff, self.seed)
        else:
            batches = length_grouped_batches(lengths, self.batch_size, self.seed)
        ds = PlannedBatches(sub, batches, self.tokenizer.pad_token_id, self.packing)
        ds.padding_fraction = padding_fraction(lengths, batches)
        return ds

    # -- provenance --------------------------------------------------------------------------------
    def _provenance(
        self, sources, trajs, plans: list[CellPlan], val_idx, rows, over, dropped, skipped
    ) -> dict[str, Any]:
        val_cells = Counter(cell_of(trajs[i]) for i in val_idx)
        cells = []
        for p in plans:
            n_tokens = sum(len(r) for i in p.indices for r in rows[i])
            n_trained = sum(int(r.trained.sum()) for i in p.indices for r in rows[i])
            cells.append(
                {
                    "cell": p.cell,
                    "available": p.available,
                    "requested": p.requested,
                    "realised": len(p.indices),
                    "distinct": len(set(p.indices)),
                    "sampling": "upsampled" if p.upsampled else ("all" if p.requested == p.available else "subsampled"),
                    "tokens": n_tokens,
                    "trained_tokens": n_trained,
                    "truncated": sum(1 for i in p.indices if i in over) if self.truncation == "truncate" else 0,
                    "dropped_over_cutoff": dropped.get(p.cell, 0),
                    "val": val_cells.get(p.cell, 0),
                }
            )
        return {
            "format": self.format,
            "protocol": self.protocol,
            "tokenizer": self.tokenizer_name,
            "cutoff": self.cutoff,
            "truncation": self.truncation,
            "mask_observations": self.mask_observations,
            "seed": self.seed,
            "mix": self.mix,
            "packing": self.packing,
            "batch_size": self.batch_size,
            "sampling_rule": "per cell: without replacement while the cell has enough, then whole shuffled copies "
            "plus a remainder without replacement (upsampling)",
            "cells": cells,
            "train_examples": sum(c["realised"] for c in cells),
            "train_tokens": sum(c["tokens"] for c in cells),
            "train_batches": len(self.train_set),
            "train_padding_fraction": round(self.train_set.padding_fraction, 4),
            "val_examples": len(val_idx),
            "val_questions": len({trajs[i].question for i in val_idx}),
            "truncated_total": sum(c["truncated"] for c in cells),
            "dropped_over_cutoff_total": sum(dropped.values()),
            "skipped": dict(skipped),
            "sources": [{"path": str(s.path), "sha256": s.sha256, "records": len(s.trajectories)} for s in sources],
        }

    def _log_dir(self) -> Path | None:
        trainer = self.trainer
        if trainer is not None and getattr(trainer, "log_dir", None):
            return Path(trainer.log_dir)
        return Path(self.run_dir) if self.run_dir else None

    def _report(self) -> None:
        out = self._log_dir()  # on every rank: trainer.log_dir is a collective (broadcast) under DDP
        trainer = self.trainer
        if trainer is not None and not trainer.is_global_zero:
            return
        from rich.console import Console
        from rich.table import Table

        prov = self.provenance
        table = Table(title=f"training mix ({self.format}, cutoff {self.cutoff}, {self.truncation})")
        cols = (
            "cell",
            "available",
            "requested",
            "realised",
            "sampling",
            "tokens",
            "trained",
            "truncated",
            "dropped",
            "val",
        )
        for c in cols:
            table.add_column(c, justify="left" if c in ("cell", "sampling") else "right")
        for c in prov["cells"]:
            table.add_row(
                c["cell"], str(c["available"]), str(c["requested"]), str(c["realised"]), c["sampling"], str(c["tokens"]),
                str(c["trained_tokens"]), str(c["truncated"]), str(c["dropped_over_cutoff"]), str(c["val"]),
            )  # fmt: skip
        console = Console(stderr=True)
        console.width = max(console.width, 130)
        console.print(table)
        console.print(
            f"{prov['train_examples']} train examples in {prov['train_batches']} batches "
            f"({'packed' if self.packing else 'length-grouped'}, padding {prov['train_padding_fraction']:.1%}); "
            f"{prov['val_examples']} val examples on {prov['val_questions']} held-out questions; "
            f"{prov['truncated_total']} truncated, {prov['dropped_over_cutoff_total']} dropped at the cutoff"
        )
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / PROVENANCE_FILE).write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")

    # -- loaders -----------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise FireactError("TrajectoryDataModule.setup() has not run")
        return shuffled_loader(
            self.train_set, self.seed, self.trainer, batch_size=1, collate_fn=unwrap_planned_batch,
            num_workers=self.num_workers,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(
            self.val_set, batch_size=1, shuffle=False, collate_fn=unwrap_planned_batch, num_workers=self.num_workers
        )
