"""A chat fine-tuning JSONL file checked against the OpenAI fine-tuning API's rules, and what training
on it would cost, before anything is uploaded or billed.

The rules are the API's documented ones (the checks of OpenAI's cookbook "Data preparation and analysis
for chat model fine-tuning"): one JSON object per line with a `messages` list; each message a
system/user/assistant role and string content (`weight` 0/1 on assistant messages); at least one
assistant message per example; in tool-call examples (the tools API's shape) a `tools` list, assistant
`tool_calls` of declared functions with JSON-string arguments, and `tool` messages answering them by
id; at least 10 examples; an example within the model's per-example token
limit. Tokens are counted with tiktoken when it is installed and has its encoding, else estimated at
4 characters per token (OpenAI's rule of thumb), and the estimate says which. The epochs left to the
API ("auto") follow the cookbook's rule; prices are the published per-token training prices.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fireact.data import tool_calls
from fireact.data.chat import ROLES
from fireact.data.paths import json_value, read_text
from fireact.errors import FireactError

MIN_EXAMPLES = 10
# per-example token limit (the model's training context) and USD per 1M training tokens, as published
# on openai.com/api/pricing and the fine-tuning guide; prices change, so --price-per-million overrides the price
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
        tools = _tool_names(example.get("tools", []), where)
        n = 3  # every reply is primed with <|start|>assistant<|message|>
        n += count(json.dumps(example["tools"])) if "tools" in example else 0  # the tool list rides along
        called: set[str] = set()
        for i, m in enumerate(messages):
            t = _check_message(m, f"{where}: messages[{i}]", tools, called, count)
            n += 3 + t + count(m["role"]) + (1 + count(str(m["name"])) if "name" in m else 0)
            if m["role"] == "assistant" and m.get("weight", 1):
                assistant += t
        if not any(m["role"] == "assistant" for m in messages):
            raise FireactError(f"{where}: no assistant message: an example must have one to train on")
        if n > limit:
            raise FireactError(
                f"{where}: {n:,} tokens{'' if exact else ' (estimated)'}, over {model}'s per-example limit of {limit:,}"
            )
        tokens.append(n)
    if len(tokens) < MIN_EXAMPLES:
        raise FireactError(f"{path}: {len(tokens)} example(s); the fine-tuning API needs at least {MIN_EXAMPLES}")
    return ChatFile(path, len(tokens), tokens, assistant, exact)


def _tool_names(tools: object, where: str) -> set[str]:
    """The function names an example's `tools` declares (the tools API's shape)."""
    names = tool_calls.declared_names(tools)
    if names is None:
        raise FireactError(f"{where}: tools must be a list of {{type: function, function: {{name, parameters}}}}")
    return names


def _check_message(m: object, where: str, tools: set[str], called: set[str], count: Callable[[str], int]) -> int:
    """One message against the API's rules; returns its content tokens (tool-call arguments included).
    `called` collects the ids of the tool calls so far, which a `tool` message must answer."""
    if not isinstance(m, dict):
        raise FireactError(f"{where} must be an object with role and content")
    unknown = set(m) - {"role", "content", "name", "weight", "tool_calls", "tool_call_id"}
    if unknown:
        raise FireactError(f"{where} has key(s) the API does not take: {', '.join(sorted(unknown))}")
    if m.get("role") not in (*ROLES, "tool"):
        raise FireactError(f"{where}.role {m.get('role')!r} is not one of {', '.join((*ROLES, 'tool'))}")
    calls = m.get("tool_calls")
    if not isinstance(m.get("content"), str) and not (m.get("content") is None and calls):
        raise FireactError(f"{where}.content must be a string (null only beside tool_calls)")
    if "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1)):
        raise FireactError(f"{where}.weight must be 0 or 1, and only on assistant messages")
    n = count(m.get("content") or "")
    if calls is not None:
        if m["role"] != "assistant" or not isinstance(calls, list) or not calls:
            raise FireactError(f"{where}.tool_calls must be a non-empty list, on an assistant message")
        for k, c in enumerate(calls):
            function = c.get("function") if isinstance(c, dict) else None
            if not isinstance(function, dict) or not isinstance(c.get("id"), str) or function.get("name") not in tools:
                raise FireactError(
                    f"{where}.tool_calls[{k}] must have an id and call a function the example's tools declare"
                )
            try:
                json.loads(function.get("arguments"))
            except (TypeError, json.JSONDecodeError):
                raise FireactError(f"{where}.tool_calls[{k}].function.arguments must be a JSON string") from None
            called.add(c["id"])
            n += count(function["name"]) + count(function["arguments"])
    if m["role"] == "tool" and m.get("tool_call_id") not in called:
        raise FireactError(f"{where}: a tool message must answer an earlier tool call by its tool_call_id")
    return n
