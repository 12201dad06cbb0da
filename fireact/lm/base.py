"""What a backend is (LM, Completion) and the one stop rule every backend applies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fireact.data.prompt_style import Prompt, PromptStyle
from fireact.data.react_grammar import cut_after_action


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None  # set when the backend failed after its retries
    # backends that return tokens (`LM.returns_tokens`): the prompt as fed, the sampled ids (up to the
    # one that completed the step) and their log-probs under the sampling policy
    prompt_ids: list[int] | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None


class LM(Protocol):
    """What `run_rollouts` needs of a backend; the capabilities are attributes, never probed."""

    name: str
    batched: bool  # True: one call over many prompts beats many concurrent single calls
    continuous: bool  # True: play episodes in the continuous-batching engine (local HF models)
    returns_tokens: bool  # True: each Completion carries its prompt and sampled token ids and log-probs
    concurrency: int  # parallel episodes for an unbatched backend
    prompt_style: PromptStyle | None  # the format saved with the weights, if any

    def reset_cache(self) -> None:
        """Forget cached KV: the weights may have changed since (a model being trained)."""

    def complete(
        self,
        prompts: list[Prompt],
        stop: list[str],
        max_tokens: int,
        temperature: float = 0.0,
        stop_after_action: bool = False,
    ) -> list[Completion]: ...


def step_complete(text: str, stop: list[str], stop_after_action: bool) -> bool:
    """A step's text is complete: a stop string appeared, or (optionally) the Action line ended."""
    return any(s in text for s in stop) or (stop_after_action and cut_after_action(text) is not None)


def truncate_at_stop(text: str, stop: list[str], stop_after_action: bool) -> str:
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    if stop_after_action:
        i = cut_after_action(text[:cut])
        if i is not None:
            cut = min(cut, i)
    return text[:cut]
