"""Task x method mixing by count or fraction, and a held-out split disjoint by question.

Mix rule (`mix` maps a cell "task/method" to a number):
- an int n >= 0 asks for exactly n trajectories of that cell;
- a float f with 0 < f < 1 asks for round(f * total) trajectories, where total is the size of the
  final mix: `total` when given; otherwise, when some cells have counts, the counts make up the
  remaining share: total = sum(counts) / (1 - sum(fractions)); otherwise (fractions only) the number
  of trajectories available in the listed cells.
  Example: {hotpotqa/react: 500, hotpotqa/cot: 187, strategyqa/react: 0.25} -> total 916,
  strategyqa/react gets 229.
Cells not listed are left out; no mix means every trajectory once.
Sampling per cell is deterministic in (seed, cell): without replacement while the cell has enough;
beyond that the cell is upsampled: whole shuffled copies of the pool plus a remainder drawn
without replacement, so no trajectory repeats more than once more than another.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fireact.data.trajectory import METHODS, Trajectory, question_key
from fireact.errors import FireactError


def cell_of(traj: Trajectory) -> str:
    return f"{traj.task}/{traj.method}"


def _rng(seed: int, salt: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(salt.encode())])


def validate_mix(mix: dict[str, int | float]) -> dict[str, int | float]:
    out: dict[str, int | float] = {}
    for cell, value in mix.items():
        task, sep, method = str(cell).partition("/")
        if not sep or not task or method not in METHODS:
            raise FireactError(f"mix cell {cell!r} must be 'task/method' with method one of {', '.join(METHODS)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FireactError(f"mix[{cell!r}] = {value!r} must be a count (int) or a fraction (float in (0, 1))")
        if isinstance(value, int) and value < 0:
            raise FireactError(f"mix[{cell!r}] = {value} must not be negative")
        if isinstance(value, float) and not 0 < value < 1:
            raise FireactError(f"mix[{cell!r}] = {value} is a float, so a fraction in (0, 1); write counts as ints")
        out[str(cell)] = value
    return out


def resolve_counts(mix: dict[str, int | float], available: dict[str, int], total: int | None = None) -> dict[str, int]:
    """The number of trajectories each cell contributes (see the module docstring for the rule)."""
    mix = validate_mix(mix)
    counts = {c: v for c, v in mix.items() if isinstance(v, int)}
    fractions = {c: v for c, v in mix.items() if isinstance(v, float)}
    share = sum(fractions.values())
    if fractions and total is None:
        if counts:
            if share >= 1:
                raise FireactError(f"mix fractions sum to {share:g}: with counts present they must sum to less than 1")
            total = round(sum(counts.values()) / (1 - share))
        else:
            if share > 1 + 1e-9:
                raise FireactError(f"mix fractions sum to {share:g}, more than 1")
            total = sum(available.get(c, 0) for c in fractions)
    out = dict(counts)
    for c, f in fractions.items():
        out[c] = round(f * total)
    for c, n in out.items():
        if n > 0 and available.get(c, 0) == 0:
            have = ", ".join(f"{k}: {v}" for k, v in sorted(available.items())) or "nothing"
            raise FireactError(f"mix asks for {n} of {c} but the sources have none (available: {have})")
    return out


def sample_cell(pool: Sequence[int], n: int, seed: int, cell: str) -> list[int]:
    """n items of pool: a seeded permutation prefix, or whole copies + a prefix when n > len(pool)."""
    if n == 0 or not pool:
        return []
    rng = _rng(seed, cell)
    pool = np.asarray(pool)
    out: list[int] = []
    while len(out) + len(pool) <= n:
        out += pool[rng.permutation(len(pool))].tolist()
    rest = n - len(out)
    if rest:
        out += pool[rng.permutation(len(pool))[:rest]].tolist()
    return out


@dataclass
class CellPlan:
    cell: str
    available: int
    requested: int
    indices: list[int]

    @property
    def upsampled(self) -> bool:
        return self.requested > self.available


def plan_mix(
    trajectories: Sequence[Trajectory],
    pool: Sequence[int],
    mix: dict[str, int | float] | None,
    seed: int,
    total: int | None = None,
) -> list[CellPlan]:
    """Per cell, which trajectory indices (from `pool`, repeats allowed when upsampled) are trained on."""
    by_cell: dict[str, list[int]] = {}
    for i in pool:
        by_cell.setdefault(cell_of(trajectories[i]), []).append(i)
    available = {c: len(v) for c, v in by_cell.items()}
    if mix is None:
        return [CellPlan(c, available[c], available[c], list(by_cell[c])) for c in sorted(by_cell)]
    counts = resolve_counts(mix, available, total)
    plans = [
        CellPlan(c, available.get(c, 0), counts.get(c, 0), sample_cell(by_cell.get(c, []), counts.get(c, 0), seed, c))
        for c in sorted(set(by_cell) | set(counts))
    ]
    return plans


def heldout_split(trajectories: Sequence[Trajectory], val_size: int | float, seed: int) -> tuple[list[int], list[int]]:
    """(train, val) indices with no question in both: val_size questions (int) or that fraction of them (float)."""
    keys = [question_key(t.question) for t in trajectories]
    unique = sorted(set(keys))
    if isinstance(val_size, bool) or val_size < 0 or (isinstance(val_size, float) and val_size >= 1):
        raise FireactError(f"val_size {val_size!r} must be a question count (int >= 0) or a fraction in [0, 1)")
    k = round(val_size * len(unique)) if isinstance(val_size, float) else int(val_size)
    if k > len(unique):
        raise FireactError(f"val_size {val_size} asks for more questions than the {len(unique)} in the sources")
    held = {unique[i] for i in _rng(seed, "heldout").permutation(len(unique))[:k]}
    train = [i for i, q in enumerate(keys) if q not in held]
    val = [i for i, q in enumerate(keys) if q in held]
    return train, val
