"""The exact tokens of a sampled episode, for on-policy training without re-tokenization.

The rollout engine records, for every turn, the prompt tokens the model was fed (as the part of the
previous context it kept plus the new tokens after it) and the tokens it sampled with their
log-probabilities under the sampling policy. `training_rows` turns that log into token rows whose
trained positions are exactly the sampled tokens: the training side never tokenizes generated text
again (re-tokenizing sampled text changes token boundaries, and with them the gradient).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fireact.data.token_row import TokenRow


@dataclass
class TokenTurn:
    keep: int  # tokens of the previous turn's context + sampled tokens this turn's prompt starts with
    prompt: list[int] = field(default_factory=list)  # the prompt tokens after those
    generated: list[int] = field(default_factory=list)  # sampled by the model
    logprobs: list[float] = field(default_factory=list)  # of each sampled token, under the sampling policy

    @classmethod
    def from_dict(cls, d: Any) -> TokenTurn:
        """ValueError naming the first key of the wrong shape."""
        if not isinstance(d, dict) or set(d) != {"keep", "prompt", "generated", "logprobs"}:
            raise ValueError("expected an object with keep, prompt, generated and logprobs")
        lists = isinstance(d["prompt"], list) and isinstance(d["generated"], list)
        ids = [d["keep"], *d["prompt"], *d["generated"]] if lists else [None]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
            raise ValueError("keep, prompt and generated must be token ids (integers)")
        lp = d["logprobs"]
        if (
            not isinstance(lp, list)
            or len(lp) != len(d["generated"])
            or not all(isinstance(x, (int, float)) for x in lp)
        ):
            raise ValueError("logprobs must be one number per generated token")
        return cls(d["keep"], d["prompt"], d["generated"], [float(x) for x in lp])


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def last_context(turns: list[TokenTurn]) -> list[int]:
    """The tokens the last turn ended with: its prompt (as kept + new) and what it sampled."""
    context: list[int] = []
    for t in turns:
        context = context[: t.keep] + t.prompt + t.generated
    return context


def start_turn(turns: list[TokenTurn], prompt: list[int]) -> TokenTurn:
    """The next turn of an episode whose full prompt is `prompt`: the part of the last context it
    keeps, then its new tokens (sampled tokens stay as sampled as long as the prompt repeats them)."""
    context = last_context(turns)
    keep = common_prefix(context, prompt)
    return TokenTurn(keep, prompt[keep:])


def training_rows(turns: list[TokenTurn], group: str = "") -> list[TokenRow]:
    """One row while each prompt continues the previous context exactly; a new row where the prompt
    rewrote earlier tokens (e.g. the chat template closed the turn with other tokens than sampled).
    `group` names the question the episode answers (its rows' advantage group)."""
    rows: list[tuple[list[int], list[bool], list[float]]] = []  # (ids, trained, sampling log-probs)
    context: list[int] = []  # the previous turn's prompt + sampled tokens
    for t in turns:
        if not rows or t.keep != len(context):
            rows.append((context[: t.keep], [False] * t.keep, [0.0] * t.keep))
        ids, trained, logprobs = rows[-1]
        ids += t.prompt + t.generated
        trained += [False] * len(t.prompt) + [True] * len(t.generated)
        logprobs += [0.0] * len(t.prompt) + t.logprobs
        context = context[: t.keep] + t.prompt + t.generated
    return [TokenRow(ids, trained, logprobs, group) for ids, trained, logprobs in rows if any(trained)]
