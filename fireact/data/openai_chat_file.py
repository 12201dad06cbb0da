"""A chat fine-tuning JSONL file checked against the OpenAI fine-tuning API's rules, and what training
on it would cost, before anything is uploaded or billed.

The rules are the API's documented ones (the checks of OpenAI's cookbook "Data preparation and analysis
for chat model fine-tuning"): one JSON object per line with a `messages` list; each message a
system/user/assistant role and string content (`weight` 0/1 on assistant messages); at least one
assistant message per example; at least 10 examples; an example within the model's per-example token
limit. Tokens are counted with tiktoken when it is installed and has its encoding, else estimated at
4 characters per token (OpenAI's rule of thumb), and the estimate says which. The epochs left to the
API ("auto") follow the cookbook's rule; prices are the published per-token training prices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fireact.data.chat import ROLES
from fireact.data.paths import json_value, read_text
from fireact.errors import FireactError

MIN_EXAMPLES = 10
# per-example token limit (the model's training context) and USD per 1M training tokens, as published
# on openai.com/api/pricing and the fine-tuning guide (2025); --price-per-million overrides the price
MODELS: dict[str, tuple[int, float]] = {
    "gpt-4o-mini-2024-07-18": (65_536, 3.00),
    "gpt-4o-2024-08-06": (65_536, 25.00),
    "gpt-4.1-2025-04-14": (65_536, 25.00),
    "gpt-4.1-mini-2025-04-14": (65_536, 5.00),
    "gpt-4.1-nano-2025-04-14": (65_536, 1.50),
    "gpt-3.5-turbo-0125": (16_385, 8.00),
}
DEFAULT_TOKEN_LIMIT = 16_385  # an unknown model is held to the smallest limit of the table
# the cookbook's default-epochs rule: aim at 3 epochs, but between 100 and 25,000 example passes
TARGET_EPOCHS, MIN_PASSES, MAX_PASSES, MAX_EPOCHS = 3, 100, 25_000, 25


@dataclass
class ChatFile:
    path: Path
    examples: int
    tokens: list[int]  # per example, as the API counts them (with the per-message framing)
    assistant_tokens: int
    exact_tokens: bool  # tiktoken counted them; else ~4 characters per token

    def epochs(self, requested: int | None) -> int:
        if requested:
            return requested
        n = self.examples
        if n * TARGET_EPOCHS < MIN_PASSES:
            return min(MAX_EPOCHS, math.ceil(MIN_PASSES / n))
        if n * TARGET_EPOCHS > MAX_PASSES:
            return max(1, MAX_PASSES // n)
        return TARGET_EPOCHS

    def billed_tokens(self, model: str, epochs: int | None) -> int:
        limit = MODELS.get(model, (DEFAULT_TOKEN_LIMIT, 0.0))[0]
        return sum(min(t, limit) for t in self.tokens) * self.epochs(epochs)


def price_per_million(model: str, override: float | None = None) -> float | None:
    """USD per 1M training tokens: the override, the table's price for the model (a fine-tuned
    `ft:base:...` model is priced as its base), or None when unknown."""
    if override is not None:
        return override
    base = model.split(":")[1] if model.startswith("ft:") else model
    return MODELS[base][1] if base in MODELS else None


def token_counter(model: str) -> tuple[Callable[[str], int], bool]:
    """(count tokens of a text, exact?) for the model's encoding; tiktoken fetches encodings from the
    internet on first use, so an offline machine without its cache gets the estimate."""
    try:
        import tiktoken

        base = model.split(":")[1] if model.startswith("ft:") else model
        enc = tiktoken.get_encoding("cl100k_base" if base.startswith("gpt-3.5") else "o200k_base")
        return (lambda text: len(enc.encode(text, disallowed_special=()))), True
    except Exception:  # noqa: BLE001  (not installed, or no encoding file offline: estimate instead)
        return (lambda text: math.ceil(len(text) / 4)), False


def check_chat_file(path: str | Path, model: str) -> ChatFile:
    """The file's examples and token counts; a FireactError naming file:line and the first problem."""
    path = Path(path)
    count, exact = token_counter(model)
    limit = MODELS.get(model, (DEFAULT_TOKEN_LIMIT, 0.0))[0]
    tokens: list[int] = []
    assistant = 0
    for lineno, line in enumerate(read_text(path, "training file").split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        example = json_value(line, path, lineno)
        messages = example.get("messages") if isinstance(example, dict) else None
        if not isinstance(messages, list) or not messages:
            raise FireactError(f"{where}: an example must be an object with a non-empty `messages` list")
        n = 3  # every reply is primed with <|start|>assistant<|message|>
        roles = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise FireactError(f"{where}: messages[{i}] must be an object with role and content")
            unknown = set(m) - {"role", "content", "name", "weight"}
            if unknown:
                raise FireactError(
                    f"{where}: messages[{i}] has key(s) the API does not take: {', '.join(sorted(unknown))}"
                )
            if m.get("role") not in ROLES:
                raise FireactError(f"{where}: messages[{i}].role {m.get('role')!r} is not one of {', '.join(ROLES)}")
            if not isinstance(m.get("content"), str):
                raise FireactError(f"{where}: messages[{i}].content must be a string")
            if "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1)):
                raise FireactError(f"{where}: messages[{i}].weight must be 0 or 1, and only on assistant messages")
            roles.append(m["role"])
            t = count(m["content"])
            n += 3 + t + count(m["role"]) + (1 + count(str(m["name"])) if "name" in m else 0)
            if m["role"] == "assistant" and m.get("weight", 1):
                assistant += t
        if "assistant" not in roles:
            raise FireactError(f"{where}: no assistant message: an example must have one to train on")
        if n > limit:
            raise FireactError(
                f"{where}: {n:,} tokens{'' if exact else ' (estimated)'}, over {model}'s per-example limit of {limit:,}"
            )
        tokens.append(n)
    if len(tokens) < MIN_EXAMPLES:
        raise FireactError(f"{path}: {len(tokens)} example(s); the fine-tuning API needs at least {MIN_EXAMPLES}")
    return ChatFile(path, len(tokens), tokens, assistant, exact)
