"""Rendered trajectories -> token ids and labels, with the loss only on the agent's thoughts/actions.

The text and its trained character spans come from `fireact.data.prompt_style` (the one renderer
that inference uses too). The text is tokenized once; labels come from the character spans through
the fast tokenizer's offsets, so token boundaries cannot drift between separately tokenized pieces.
A token is trained iff its characters lie inside a trained span.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fireact.data.prompt_style import PromptStyle, Span
from fireact.data.token_row import IGNORE_INDEX, TokenRow
from fireact.data.trajectory import Trajectory
from fireact.errors import FireactError


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


def span_labels(encoding: Any, spans: list[Span]) -> np.ndarray:
    """Labels of one `tokenizers.Encoding`: its ids where a token lies inside a span, else IGNORE_INDEX.

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


def unmasked(spans: list[Span]) -> list[Span]:
    """One span from the agent's first token to its last: observations (and, in chat, the template
    tokens around them) carry the loss too; the question and prompt before it never do."""
    return [(spans[0][0], spans[-1][1])] if spans else []


def encode(
    trajectories: list[Trajectory],
    tokenizer: Any,
    style: PromptStyle,
    cutoff: int | None = None,
    mask_observations: bool = True,
) -> list[TokenRow]:
    """Render (the one renderer), tokenize all texts in one call, label from the spans, cut at `cutoff`.

    The only encode path: the DataModule trains on exactly this and `fireact mask-audit` shows it.
    Cut examples are flagged, not hidden: the DataModule keeps them cut or drops them.
    `mask_observations=False` is how FireAct's released runs trained (their masked labels were built
    but never used): the loss also covers the observations between the agent's turns.
    """
    rendered = [style.render(t, tokenizer) for t in trajectories]
    if not mask_observations:
        rendered = [(text, unmasked(spans)) for text, spans in rendered]
    ids, labels = tokenize_with_labels(
        [text for text, _ in rendered], [spans for _, spans in rendered], tokenizer, style.add_special_tokens
    )
    cut = slice(None, cutoff)
    over = [0 if cutoff is None else max(len(i) - cutoff, 0) for i in ids]
    return [TokenRow(i[cut], lab[cut] != IGNORE_INDEX, cut=n) for i, lab, n in zip(ids, labels, over)]
