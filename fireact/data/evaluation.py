"""Re-scoring trajectories against gold answers and summarising them like the paper's tables."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from fireact.data.tasks import Example, Task
from fireact.data.trajectory import Trajectory


@dataclass
class Summary:
    em: float  # fraction of `expected` (or of n when not given)
    f1: float
    n: int  # trajectories scored
    expected: int  # denominator: missing episodes count as wrong
    turns_mean: float  # actions per episode
    turns_std: float
    format_errors: int  # episodes that ended without a well-formed finish
    format_error_rate: float

    def to_dict(self) -> dict:
        return asdict(self)


def rescore(records: list[Trajectory], task: Task, examples: dict[str, Example]) -> list[Trajectory]:
    """Score each record's own prediction against the task's gold (never a stored em field)."""
    for r in records:
        gold = examples[r.id].answer if r.id in examples else r.answer
        if gold is None:
            continue
        r.answer = gold
        s = task.score(r.prediction, gold)
        r.reward, r.f1 = s.em, s.f1
    return records


def summarize(records: list[Trajectory], expected: int | None = None) -> Summary:
    denom = expected if expected is not None else len(records)
    turns = [r.num_actions for r in records]
    errors = sum(1 for r in records if not r.finished)
    return Summary(
        em=sum(r.reward for r in records) / denom if denom else 0.0,
        f1=sum(r.f1 for r in records) / denom if denom else 0.0,
        n=len(records),
        expected=denom,
        turns_mean=statistics.fmean(turns) if turns else 0.0,
        turns_std=statistics.stdev(turns) if len(turns) > 1 else 0.0,
        format_errors=errors,
        format_error_rate=errors / len(records) if records else 0.0,
    )
