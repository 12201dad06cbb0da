"""Rollout metrics as torchmetrics states reduced by sum, so they are exact under DDP."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from fireact.data.trajectory import Trajectory


class RolloutMetrics(Metric):
    """Reward (the environment's; EM where it has none), EM, F1, turns mean/std and format-error rate
    over the episodes of all ranks."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("reward", "em", "f1", "turns", "turns_sq", "format_errors", "episodes"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, trajectories: list[Trajectory]) -> None:
        for t in trajectories:
            turns = t.num_actions
            self.reward += t.score
            self.em += t.em
            self.f1 += t.f1
            self.turns += turns
            self.turns_sq += turns * turns
            self.format_errors += 0.0 if t.finished else 1.0
            self.episodes += 1

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.episodes.clamp(min=1)
        mean = self.turns / n
        var = (self.turns_sq / n - mean**2).clamp(min=0) * n / (n - 1).clamp(min=1)  # sample std, as `fireact score`
        return {
            "reward": self.reward / n,
            "em": self.em / n,
            "f1": self.f1 / n,
            "turns_mean": mean,
            "turns_std": var.sqrt(),
            "format_error_rate": self.format_errors / n,
            "episodes": self.episodes,
        }
