"""Trajectory -> training text and token labels, with the loss only on the agent's thoughts/actions.

Two formats, both zero-shot (no few-shot examples in the prompt):

- `chat`: the tokenizer's chat template over FireAct's gpt_format messages: user = question,
  assistant = "Thought: ...\\nAction: ...", user = "Observation: ...". Trained: each assistant
  content plus the special token that closes the turn (e.g. `<|im_end|>`).
- `alpaca`: FireAct's alpaca prompt, then "Thought: ...\\nAction: ...\\nObservation: ...\\n" lines.
  Trained: each "Thought: ...\\nAction: ..." with the newline that ends it, and EOS after the final
  action. Observations are inside the same response string but never trained.

The text is rendered once and tokenized once; labels come from character spans through the fast
tokenizer's offset mapping, so token boundaries cannot drift between separately tokenized pieces.
A token is trained iff its characters lie inside a trained span. The "Episode finished, reward = ..."
line is never rendered (it leaks the reward), nor is an observation after the last agent turn
(nothing after it is trained).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fireact.data.errors import FireactError
from fireact.data.trajectory import Trajectory, Turn

Format = Literal["chat", "alpaca"]
FORMATS: tuple[str, ...] = ("chat", "alpaca")
IGNORE_INDEX = -100
ALPACA_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{question}\n\n### Response:\n"
)
_REWARD_LINE = re.compile(r"Episode finished,\s*reward\s*=", re.IGNORECASE)

Span = tuple[int, int]


def agent_text(turn: Turn) -> str:
    """What the agent writes in one step (FireAct's assistant message); no Thought line when empty (IO)."""
    return f"Thought: {turn.thought}\nAction: {turn.action}" if turn.thought else f"Action: {turn.action}"


def observation_text(observation: str) -> str:
    return f"Observation: {observation}"


def training_turns(traj: Trajectory) -> list[Turn]:
    """The turns as rendered: reward lines dropped, no observation after the last agent turn."""
    turns = [
        Turn(
            t.thought, t.action, None if t.observation is None or _REWARD_LINE.search(t.observation) else t.observation
        )
        for t in traj.turns
    ]
    if turns:
        turns[-1] = Turn(turns[-1].thought, turns[-1].action, None)
    return turns


def chat_messages(traj: Trajectory) -> list[dict[str, str]]:
    """FireAct's gpt_format conversation for a trajectory (no system message: the template's own)."""
    messages = [{"role": "user", "content": traj.question}]
    for turn in training_turns(traj):
        messages.append({"role": "assistant", "content": agent_text(turn)})
        if turn.observation is not None:
            messages.append({"role": "user", "content": observation_text(turn.observation)})
    return messages


def _special_tokens(tokenizer: Any) -> list[str]:
    cached = getattr(tokenizer, "_fireact_specials", None)
    if cached is None:
        cached = sorted({t for t in tokenizer.all_special_tokens if t}, key=len, reverse=True)
        tokenizer._fireact_specials = cached
    return cached


def render_chat(traj: Trajectory, tokenizer: Any) -> tuple[str, list[Span]]:
    messages = chat_messages(traj)
    if getattr(tokenizer, "chat_template", None) is None:
        raise FireactError(f"tokenizer {tokenizer.name_or_path!r} has no chat template: use format 'alpaca'")
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    specials = _special_tokens(tokenizer)
    spans: list[Span] = []
    cursor = 0
    for m in messages:
        start = text.find(m["content"], cursor)
        if start < 0:
            raise FireactError(
                f"the chat template of {tokenizer.name_or_path!r} changes message text (trajectory {traj.id or traj.question[:60]!r}): "
                "cannot locate the agent's turns; use format 'alpaca'"
            )
        end = start + len(m["content"])
        if m["role"] == "assistant":
            closer = next((s for s in specials if text.startswith(s, end)), None)
            spans.append((start, end + len(closer) if closer else end))
        cursor = end
    return text, spans


def render_alpaca(traj: Trajectory, tokenizer: Any) -> tuple[str, list[Span]]:
    eos = tokenizer.eos_token or ""
    parts = [ALPACA_PROMPT.format(question=traj.question)]
    pos = len(parts[0])
    spans: list[Span] = []
    turns = training_turns(traj)
    for i, turn in enumerate(turns):
        trained = agent_text(turn) + (eos if i == len(turns) - 1 else "\n")
        parts.append(trained)
        spans.append((pos, pos + len(trained)))
        pos += len(trained)
        if turn.observation is not None:
            obs = observation_text(turn.observation) + "\n"
            parts.append(obs)
            pos += len(obs)
    return "".join(parts), spans


def render(traj: Trajectory, tokenizer: Any, fmt: Format = "chat") -> tuple[str, list[Span]]:
    """(training text, character spans that carry the loss). Pure: same input, same output."""
    if fmt == "chat":
        return render_chat(traj, tokenizer)
    if fmt == "alpaca":
        return render_alpaca(traj, tokenizer)
    raise FireactError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def trained_text(text: str, spans: list[Span]) -> str:
    """The characters the loss is on, concatenated (what the label tokens must decode to)."""
    return "".join(text[a:b] for a, b in spans)


def token_mask(offsets: np.ndarray, spans: list[Span]) -> np.ndarray:
    """True for tokens whose characters lie inside one trained span (offsets: [n, 2] char ranges)."""
    if not spans or len(offsets) == 0:
        return np.zeros(len(offsets), dtype=bool)
    starts = np.fromiter((a for a, _ in spans), dtype=np.int64, count=len(spans))
    ends = np.fromiter((b for _, b in spans), dtype=np.int64, count=len(spans))
    tok_start, tok_end = offsets[:, 0], offsets[:, 1]
    k = np.searchsorted(starts, tok_start, side="right") - 1  # the last span starting at or before the token
    valid = k >= 0
    k = np.clip(k, 0, None)
    return valid & (tok_end <= ends[k]) & (tok_end > tok_start)


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    length: int  # tokens before truncation
    truncated: bool


def span_labels(encoding: Any, spans: list[Span]) -> np.ndarray:
    """Labels of one `tokenizers.Encoding`: its ids where a token lies inside a span, else -100.

    Two char->token lookups per span instead of materialising every offset (the hot path).
    """
    ids = np.asarray(encoding.ids, dtype=np.int64)
    labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
    for a, b in spans:
        if b <= a:
            continue
        first, last = encoding.char_to_token(a), encoding.char_to_token(b - 1)
        if first is None or last is None:  # a span edge no token covers: take the exact route
            offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
            keep = token_mask(offsets, [(a, b)])
            labels[keep] = ids[keep]
            continue
        if encoding.token_to_chars(first)[0] < a:  # straddles the start: not trained
            first += 1
        if encoding.token_to_chars(last)[1] > b:
            last -= 1
        if first <= last:
            labels[first : last + 1] = ids[first : last + 1]
    return labels


def tokenize_with_labels(
    texts: list[str], spans: list[list[Span]], tokenizer: Any, add_special_tokens: bool
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One batched call of the Rust tokenizer for all texts; labels from the char spans."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not getattr(tokenizer, "is_fast", False):
        raise FireactError(
            f"tokenizer {tokenizer.name_or_path!r} is not a fast tokenizer: offsets are needed for masking"
        )
    encodings = backend.encode_batch(texts, add_special_tokens=add_special_tokens)
    ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
    return ids, [span_labels(e, sp) for e, sp in zip(encodings, spans)]


def encode_texts(
    texts: list[str],
    spans: list[list[Span]],
    tokenizer: Any,
    add_special_tokens: bool,
    cutoff: int | None = None,
) -> list[Encoded]:
    """Tokenize all texts at once and derive labels from the spans; cut at `cutoff`, flagged."""
    ids, labels = tokenize_with_labels(texts, spans, tokenizer, add_special_tokens)
    out = []
    for i, lab in zip(ids, labels):
        n = len(i)
        cut = cutoff is not None and n > cutoff
        out.append(
            Encoded(i[:cutoff].tolist() if cut else i.tolist(), lab[:cutoff].tolist() if cut else lab.tolist(), n, cut)
        )
    return out


def encode(
    trajectories: list[Trajectory], tokenizer: Any, fmt: Format = "chat", cutoff: int | None = None
) -> list[Encoded]:
    """Render and encode trajectories; truncated examples are flagged (`Encoded.truncated`), not hidden."""
    rendered = [render(t, tokenizer, fmt) for t in trajectories]
    return encode_texts(
        [r[0] for r in rendered], [r[1] for r in rendered], tokenizer, add_special_tokens=fmt == "alpaca", cutoff=cutoff
    )
