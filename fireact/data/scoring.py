"""Answer scorers as in the paper: SQuAD-normalised EM/F1, yes/no prefix, MMLU letter prefix."""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(pred: str | None, gold: str) -> float:
    return float(pred is not None and normalize_answer(pred) == normalize_answer(gold))


def f1_score(pred: str | None, gold: str) -> float:
    if pred is None:
        return 0.0
    p, g = normalize_answer(pred), normalize_answer(gold)
    # HotpotQA's official rule: yes/no/noanswer must match exactly.
    if (p in ("yes", "no", "noanswer") or g in ("yes", "no", "noanswer")) and p != g:
        return 0.0
    common = Counter(p.split()) & Counter(g.split())
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p.split()), same / len(g.split())
    return 2 * precision * recall / (precision + recall)


def yes_no_match(pred: str | None, gold: str) -> float:
    """StrategyQA: the prediction counts when it starts with the gold yes/no."""
    return float(pred is not None and normalize_answer(pred).split()[:1] == normalize_answer(gold).split())


def letter_match(pred: str | None, gold: str) -> float:
    """MMLU: the prediction counts when it starts with the gold letter (A-D)."""
    if pred is None:
        return 0.0
    p = pred.strip().lstrip("(").upper()
    return float(p[:1] == gold.strip().upper()[:1] and (len(p) == 1 or not p[1].isalpha()))
