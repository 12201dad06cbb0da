"""ReAct's own Wikipedia actions (Yao et al. 2023's `wikienv`) over the local corpus, one sentence at a time.

- `search[entity]` opens the page titled `entity` and shows its first sentence; with no such page it
  lists similar titles (BM25's best five), as ReAct's `Could not find X. Similar: [...]` did.
- `lookup[keyword]` shows the next sentence of the open page holding the keyword, as
  `(Result i / n) sentence`, and `No more results.` after the last one.

Where FireAct's `search` answers with the best-matching passage whole, here the agent reads one
sentence at a time and must ask for the one it needs: the question this environment measures is
whether that helps a small reader. The open page and the lookup cursor are the episode's own state.
"""

from __future__ import annotations

import json
import os
import re

from fireact.data.scoring import normalize_answer
from fireact.tools.base import normalize_query
from fireact.tools.function import Tool
from fireact.tools.retrievers import Retriever, make_retriever

SIMILAR = 5
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text) if s.strip()]


class WikiPages:
    """The corpus as pages by title, behind `search` and `lookup` tools (see the module docstring)."""

    def __init__(self, corpus: str | os.PathLike, retriever: str = "bm25"):
        self.retriever: Retriever = make_retriever(retriever, corpus)

    def page(self, title: str) -> tuple[str, list[str]] | None:
        """(title, sentences) of the page with this title (case and punctuation aside), or None."""
        row = self.retriever.titles.get(normalize_query(title))
        if row is None:
            return None
        passage = self.retriever.store[row]
        listed = json.loads(self.retriever.store.line(row)).get("sentences")  # HotpotQA's own split, where given
        if isinstance(listed, list) and all(isinstance(x, str) for x in listed):
            return passage.title, [x.strip() for x in listed if x.strip()]
        return passage.title, sentences(passage.text)

    def search(self, entity: str, state: dict) -> str:
        """Open the Wikipedia page of an entity and read its first sentence.

        Args:
            entity: the page's title, e.g. a person, place or work
            state: the episode's open page
        """
        found = self.page(entity) if normalize_query(entity) else None
        if found is None:
            hits = self.retriever.search([entity], SIMILAR)[0] if normalize_query(entity) else []
            titles = [self.retriever.store[row].title for row, _ in hits]
            return f"Could not find [{entity}]. Similar: {titles}."
        title, sents = found
        state.update(page=title, sentences=sents, keyword=None, cursor=0)
        return sents[0] if sents else f"The page {title} is empty."

    def lookup(self, keyword: str, state: dict) -> str:
        """Read the next sentence of the open page that holds a keyword.

        Args:
            keyword: a word or phrase to find on the page
            state: the episode's open page
        """
        if "sentences" not in state:
            return "No page is open: search[entity] first."
        key = normalize_answer(keyword)
        if state["keyword"] != key:
            state["keyword"], state["cursor"] = key, 0
            state["hits"] = [s for s in state["sentences"] if key and f" {key} " in f" {normalize_answer(s)} "]
        hits = state["hits"]
        if state["cursor"] >= len(hits):
            return "No more results."
        state["cursor"] += 1
        return f"(Result {state['cursor']} / {len(hits)}) {hits[state['cursor'] - 1]}"

    def tools(self) -> list[Tool]:
        return [Tool.from_function(self.search, blocking_io=False), Tool.from_function(self.lookup, blocking_io=False)]


def lookup_keyword(question: str, sentence: str, before: list[str]) -> str | None:
    """A word of the question that finds `sentence` by lookup before any sentence in `before` (so
    the first lookup lands on it): the longest such word, as a reader would pick the rarest."""
    words = sorted({w for w in re.findall(r"[A-Za-z0-9][\w'-]*", question) if len(w) > 3}, key=lambda w: (-len(w), w))
    for word in words:
        key = normalize_answer(word)
        if (
            key
            and f" {key} " in f" {normalize_answer(sentence)} "
            and not any(f" {key} " in f" {normalize_answer(b)} " for b in before)
        ):
            return word
    return None
