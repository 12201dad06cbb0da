"""An episode's reward, in one home: what GRPO optimises, what expert iteration and `generate
--only-successful` keep, and what eval counts as right.

An environment may score episodes its own way (`Trajectory.reward`); without one, the reward is the
exact match of the final answer, as in FireAct. GRPO may shape it (token F1 instead, a penalty for a
malformed episode, a bonus for having seen the gold answer); the other consumers use it as it is.
"""

from __future__ import annotations

from fireact.data.evaluation import gold_seen
from fireact.data.trajectory import Trajectory

# env: the environment's reward (the exact match where it has none); em, f1: the answer's own scores
REWARDS = ("env", "em", "f1")


def rewarded(t: Trajectory) -> bool:
    """A success: the episode's reward reached 1 (FireAct's filter of teacher trajectories)."""
    return t.score >= 1.0


def episode_reward(t: Trajectory, kind: str = "env", format_penalty: float = 0.0, seen_bonus: float = 0.0) -> float:
    """The reward of `kind`, minus `format_penalty` when the episode never finished well-formed, plus
    `seen_bonus` when the gold answer showed up in one of its observations: partial credit for
    retrieving it, the failure EM cannot see (most wrong answers in the wiki world never retrieved the gold)."""
    value = {"env": t.score, "em": t.em, "f1": t.f1}[kind]
    return value - (0.0 if t.finished else format_penalty) + (seen_bonus if gold_seen(t) else 0.0)
