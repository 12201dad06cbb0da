"""Batches of encoded examples: length grouping or packing, with packed examples kept apart.

A packed row holds several examples; position ids restart at 0 for each, and the attention mask
is a 4D block-diagonal causal bool mask [B, 1, T, T] (True = may attend), so no example sees
another. Unpacked batches use the usual 2D padding mask. `model_inputs` adapts a batch to the
model's attention implementation (additive float mask for eager, position ids only for flash).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fireact.data.token_row import IGNORE_INDEX, TokenRow

MODEL_KEYS = ("input_ids", "attention_mask", "position_ids", "labels")

Row = list[int]  # example indices in one sequence of the batch
Batch = list[Row]


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, group: int = 32) -> list[Batch]:
    """Shuffle, then sort by length inside windows of `group` batches: little padding, still random."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches: list[Batch] = []
    window = batch_size * group
    for w in range(0, len(order), window):
        chunk = order[w : w + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [[[int(i)] for i in chunk[b : b + batch_size]] for b in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pack_rows(lengths: Sequence[int], capacity: int) -> list[Row]:
    """Best-fit decreasing bin packing of examples into rows of at most `capacity` tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[Row] = []
    free: list[tuple[int, int]] = []  # (room left, row id), sorted
    for i in order:
        n = lengths[i]
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, r = free.pop(k)
            rows[r].append(i)
            room -= n
        else:
            rows.append([i])
            r, room = len(rows) - 1, capacity - n
        if room > 0:
            bisect.insort(free, (room, r))
    return rows


def pack_in_order(lengths: Sequence[int], capacity: int) -> list[Row]:
    """Consecutive examples into rows of at most `capacity` tokens (next-fit): the row-major order of
    the packed tokens is the examples' own order, so per-example values line up without a gather."""
    rows: list[Row] = []
    room = 0
    for i, n in enumerate(lengths):
        if rows and n <= room:
            rows[-1].append(i)
            room -= n
        else:
            rows.append([i])
            room = capacity - n
    return rows


def packed_batches(lengths: Sequence[int], batch_size: int, capacity: int, seed: int) -> list[Batch]:
    rows = pack_rows(lengths, capacity)
    rng = np.random.default_rng(seed)
    rows = [rows[i] for i in rng.permutation(len(rows))]
    return [rows[b : b + batch_size] for b in range(0, len(rows), batch_size)]


def collate(rows: Sequence[TokenRow], batch: Batch, pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
    """Right-padded tensors for one planned batch (SFT) or micro-batch (RL), plus counts the module can
    log; `sampled_logprobs` too when the rows carry the sampling policy's log-probs."""
    row_lengths = [sum(len(rows[i]) for i in row) for row in batch]
    B, T = len(batch), max(row_lengths)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    lab = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    sampled = rows[batch[0][0]].logprobs is not None
    old = torch.zeros((B, T)) if sampled else None
    pos = torch.arange(T).repeat(B, 1)
    segment = torch.zeros((B, T), dtype=torch.long)  # 0 = pad, k = k-th example of the row
    example_index = []
    for b, row in enumerate(batch):
        at = 0
        for k, i in enumerate(row, 1):
            n = len(rows[i])
            ids[b, at : at + n] = torch.from_numpy(rows[i].input_ids)
            lab[b, at : at + n] = torch.from_numpy(rows[i].labels)
            if old is not None:
                old[b, at : at + n] = torch.from_numpy(rows[i].logprobs)
            pos[b, at : at + n] = torch.arange(n)
            segment[b, at : at + n] = k
            at += n
            example_index.append(i)
    real = segment > 0
    if packed:
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        same = segment[:, :, None] == segment[:, None, :]
        mask = same & real[:, :, None] & causal
        # pad queries see only the row's first token: no all-masked row (NaN in sdpa), and the
        # diagonal stays True exactly at real tokens (how the module counts them)
        mask[:, :, 0] |= ~real
        attention_mask = mask[:, None]
    else:
        attention_mask = real.long()
    n_real = int(real.sum())
    extra = {} if old is None else {"sampled_logprobs": old}
    return {
        **extra,
        "input_ids": ids,
        "attention_mask": attention_mask,
        "position_ids": pos,
        "labels": lab,
        "example_index": torch.tensor(example_index, dtype=torch.long),
        "num_examples": torch.tensor(len(example_index)),
        # = the loss's (shifted) targets: an example's first token is never trained (tests/data/test_encoding.py)
        "num_trained_tokens": (lab != IGNORE_INDEX).sum(),
        "num_real_tokens": torch.tensor(n_real),
        "num_pad_tokens": torch.tensor(B * T - n_real),
    }


def model_inputs(batch: dict[str, Any], model: Any = None) -> dict[str, Any]:
    """The keys a HF causal LM takes, with a packed 4D bool mask adapted to the attention kernel.

    sdpa/flex take the bool mask as is; eager adds the mask to the scores, so it gets 0 / -inf in
    the model dtype; flash-attention kernels take no 4D mask but find packed examples from the
    reset position ids. A mask already adapted passes unchanged, so a second call is harmless.
    """
    out = {k: batch[k] for k in MODEL_KEYS if k in batch}
    mask = out.get("attention_mask")
    if model is not None and isinstance(mask, torch.Tensor) and mask.ndim == 4:
        impl = getattr(getattr(model, "config", None), "_attn_implementation", "sdpa") or "sdpa"
        if impl == "eager" and mask.dtype == torch.bool:
            dtype = next(model.parameters()).dtype
            out["attention_mask"] = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(dtype).min
            )
        elif "flash" in impl:
            out.pop("attention_mask")
    return out


def padding_fraction(lengths: Sequence[int], batches: Sequence[Batch]) -> float:
    """pad tokens / all tokens when each batch is padded to its longest row."""
    total = pad = 0
    for batch in batches:
        rows = [sum(lengths[i] for i in row) for row in batch]
        total += len(rows) * max(rows)
        pad += len(rows) * max(rows) - sum(rows)
    return pad / total if total else 0.0


def random_batches(n: int, batch_size: int, seed: int) -> list[Batch]:
    order = np.random.default_rng(seed).permutation(n)
    return [[[int(i)] for i in order[b : b + batch_size]] for b in range(0, n, batch_size)]
