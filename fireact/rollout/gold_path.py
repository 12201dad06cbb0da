"""A scripted teacher for questions the agent cannot solve: it searches the question's gold
(supporting) paragraph titles with the agent's own tool and answers with the gold.

Where a strong LM's trajectories are not at hand (the wiki world has none), HotpotQA's supporting
titles still say which pages answer a question. The episode is played through the real tool, so
every observation is what the agent would have seen; each thought quotes the sentence of the last
observation that leads on (the one naming the next page, or holding the answer), as FireAct's GPT-4
thoughts do. It is a DGPO-style fallback: used only where no sample of the agent was rewarded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fireact.data.evaluation import by_question, contains_answer
from fireact.data.scoring import normalize_answer
from fireact.data.tasks import Example, wiki_rows
from fireact.data.trajectory import Trajectory, Turn
from fireact.data.wiki_questions import SPLITS as WIKI_SPLITS
from fireact.data.wiki_questions import example_id
from fireact.errors import FireactError
from fireact.tools.wiki_pages import WikiPages, lookup_keyword

_SENTENCE = re.compile(r"(?<=[.!?])\s+| \.\.\. |\n+")  # sentence ends, and the tools' passage joins
_PAREN = re.compile(r"\s*\([^)]*\)$")  # "Ed Wood (film)" -> "Ed Wood"


def _mentioned(title: str, text: str) -> bool:
    return contains_answer(text, _PAREN.sub("", title)) or contains_answer(text, title)


def ordered_titles(question: str, answer: str, titles: list[str], pages: dict[str, str]) -> list[str]:
    """The order to search the gold pages in: a page the question names before one it does not (the
    bridge before the answer's page), then the answer's page last, then the question's word order."""

    def key(title: str) -> tuple[int, int, int]:
        named = _mentioned(title, question)
        at = normalize_answer(question).find(normalize_answer(_PAREN.sub("", title)))
        return (not named, contains_answer(pages[title], answer), at if at >= 0 else len(question))

    return sorted(titles, key=key)


def quoted_sentence(observation: str, cue: str, fallback_first: bool = True) -> str:
    """The observation's first sentence holding `cue` (words), else its first sentence."""
    sentences = [s.strip() for s in _SENTENCE.split(observation.split(": ", 1)[-1]) if s.strip()]
    hit = next((s for s in sentences if contains_answer(s, cue)), None)
    return (hit or (sentences[0] if sentences and fallback_first else "")).strip()[:300]


def gold_path_episode(example: Example, task: str, titles: list[str], tool: Callable[[str], str]) -> Trajectory | None:
    """search[title] for each gold title, then finish[gold]. None when the tool does not return a
    title's page (the episode would not be the agent's world) or, for a non yes/no answer, when no
    observation holds the gold (the demonstration would answer from nowhere)."""
    gold = example.answer or ""
    yes_no = normalize_answer(gold) in ("yes", "no")  # no page says it: the thought quotes both pages
    if not titles or not gold:
        return None
    pages = {t: tool(t) for t in titles}
    if any(not pages[t].startswith(f"{t}:") for t in titles):
        return None
    if not yes_no and not any(contains_answer(p, gold) for p in pages.values()):
        return None
    order = ordered_titles(example.question, gold, titles, pages)
    turns: list[Turn] = []
    lead = ""
    for i, title in enumerate(order):
        thought = f"{lead} I need to search {title}." if lead else f"I need to search {title}."
        turns.append(Turn(thought, f"search[{title}]", pages[title]))
        lead = quoted_sentence(pages[title], _PAREN.sub("", order[i + 1])) if i + 1 < len(order) else ""
    if yes_no:
        facts = " ".join(quoted_sentence(pages[t], _PAREN.sub("", t)) for t in order)
    else:
        facts = next((s for t in reversed(order) if (s := quoted_sentence(pages[t], gold, fallback_first=False))), "")
        if not facts:  # the gold is split across sentences (an abbreviation's period): no sentence to quote
            return None
    turns.append(Turn(f"{facts} So the answer is {gold}.", f"finish[{gold}]", None))
    return Trajectory(
        question=example.question, turns=turns, task=task, id=example.id, answer=gold, prediction=gold,
        em=1.0, f1=1.0, end_reason="finish", method="react", source="gold-path", meta={"gold_path": True},
    )  # fmt: skip


def check_gold_path_pool(tasks: list[str] | None, split: str, what: str) -> None:
    """Refuse a pool without HotpotQA's supporting titles (only the wiki splits carry them)."""
    if split not in WIKI_SPLITS or set(tasks or ["hotpotqa"]) != {"hotpotqa"}:
        raise FireactError(
            f"{what} needs HotpotQA's supporting titles: a hotpotqa pool on a wiki split "
            f"({', '.join(WIKI_SPLITS)}), got tasks {tasks} split {split!r}"
        )


def supporting_titles(data_dir: Path, split: str) -> dict[str, list[str]]:
    """Question id -> its supporting titles, for a wiki split's questions."""
    return {example_id(r): r["supporting_titles"] for r in wiki_rows(data_dir, split)}


def unsolved_gold_paths(
    episodes: list[Trajectory], titles: dict[str, list[str]], tool: Callable[[str], str]
) -> list[Trajectory]:
    """A gold-path demonstration of each question none of whose episodes was rewarded (EM), where the
    question has supporting titles and the tool shows the way (`gold_path_episode`)."""
    out = []
    for (task, qid), group in by_question(episodes).items():
        if qid in titles and not any(t.em >= 1.0 for t in group):
            example = Example(qid, group[0].question, group[0].answer)
            if (t := gold_path_episode(example, task, titles[qid], tool)) is not None:
                out.append(t)
    return out


def gold_path_lookup_episode(example: Example, task: str, titles: list[str], pages: WikiPages) -> Trajectory | None:
    """The gold-path teacher in ReAct's Wikipedia actions (`fireact.tools.wiki_pages`): search[title]
    for each gold page, which shows its first sentence; where the sentence that leads on (naming the
    next page, or holding the answer) is not the first, lookup[a question word] reads it. None where
    a page is missing, no sentence holds the answer, or no question word finds the sentence first."""
    gold = example.answer or ""
    yes_no = normalize_answer(gold) in ("yes", "no")
    found = {t: pages.page(t) for t in titles}
    if not titles or not gold or any(v is None for v in found.values()):
        return None
    texts = {t: " ".join(found[t][1]) for t in titles}  # type: ignore[index]
    if not yes_no and not any(contains_answer(x, gold) for x in texts.values()):
        return None
    order = ordered_titles(example.question, gold, titles, texts)
    turns: list[Turn] = []
    state: dict = {}
    lead, quotes = "", []
    for i, title in enumerate(order):
        thought = f"{lead} I need to search {title}." if lead else f"I need to search {title}."
        turns.append(Turn(thought, f"search[{title}]", pages.search(title, state), "search", {"entity": title}))
        sents = state["sentences"]
        cue = _PAREN.sub("", order[i + 1]) if i + 1 < len(order) else (None if yes_no else gold)
        at = 0 if cue is None else next((k for k, s in enumerate(sents) if contains_answer(s, cue)), None)
        if at is None:  # the page never says what leads on: no sentence to read
            return None
        if at > 0:
            keyword = lookup_keyword(example.question, sents[at], sents[:at])
            if keyword is None:
                return None
            observed = pages.lookup(keyword, state)
            turns.append(Turn(f"I need to look up {keyword} on this page.", f"lookup[{keyword}]", observed, "lookup",
                              {"keyword": keyword}))  # fmt: skip
        lead = sents[at][:300]
        quotes.append(lead)
    facts = " ".join(quotes) if yes_no else quotes[-1]
    turns.append(Turn(f"{facts} So the answer is {gold}.", f"finish[{gold}]", None))
    return Trajectory(
        question=example.question, turns=turns, task=task, id=example.id, answer=gold, prediction=gold,
        em=1.0, f1=1.0, end_reason="finish", method="react", source="gold-path-lookup", meta={"gold_path": True},
    )  # fmt: skip
