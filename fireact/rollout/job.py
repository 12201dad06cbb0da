"""The protocol between a caller and a runner: the rollout engine imports only this."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from fireact.agent.methods import Episode, MethodSpec
from fireact.data.prompt_style import Prompt
from fireact.data.tasks import Example
from fireact.lm.base import LM, Completion
from fireact.rollout.config import EpisodeConfig


@dataclass
class RolloutJob:
    """What every runner needs: the episodes to play, and how one model step is asked for."""

    examples: list[tuple[Example, int]]  # (question, sample index)
    new_episode: Callable[[tuple[Example, int]], Episode]
    finish: Callable[[int, Episode], None]
    should_stop: Callable[[], bool]
    spec: MethodSpec
    config: EpisodeConfig  # temperature, top_p, sampling seed, batch size, record_tokens

    def complete(self, lm: LM, prompts: list[Prompt]) -> list[Completion]:
        s = self.spec
        return lm.complete(prompts, s.stop, s.max_tokens, self.config.temperature, s.stop_after_action)

    # The engine's view of a job; a live source of requests (fireact serve) overrides these.
    def pending(self) -> deque:
        """(index, example) still to play; the engine pops from the left."""
        return deque(enumerate(self.examples))

    def wait_for_work(self) -> bool:
        """Called when nothing is pending or live: True once more work arrived, False when done."""
        return False

    def spec_for(self, episode: Episode) -> MethodSpec:
        return self.spec

    def sampling_for(self, episode: Episode) -> tuple[float, float]:
        """(temperature, top_p) of the episode's tokens."""
        return self.config.temperature, self.config.top_p

    def seed_for(self, episode: Episode) -> int | None:
        """A seed of the episode's own sampler (a request's `seed`); None: the run's seeded sampler."""
        return None

    def adapter_for(self, episode: Episode) -> tuple[str, int] | None:
        """The (LoRA adapter, version) an episode runs with; None: the model as it is."""
        return None

    def between_steps(self) -> None:
        """Called by the engine before each decode step: the one time the model may be changed."""
