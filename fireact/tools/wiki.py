"""The `wiki` search tool: ReAct's own world offline. A local passage corpus (HotpotQA's Wikipedia
paragraphs by default) behind a retriever; an exact title query returns that page first, as ReAct's
search[entity] did; the observation is the top passage(s) as "Title: text", bounded."""

from __future__ import annotations

import os

from fireact.data.scoring import normalize_answer
from fireact.errors import FireactError
from fireact.tools.base import NONE_OBSERVATION, normalize_query
from fireact.tools.corpus import Passage, observation
from fireact.tools.retrievers import Retriever, make_retriever

MAX_CHARS = 500


class WikiSearch:
    def __init__(
        self, corpus: str | os.PathLike, retriever: str = "bm25", k: int = 1, max_chars: int = MAX_CHARS,
        progress_every: int = 0,
    ):  # fmt: skip
        if k < 1 or max_chars < 1:
            raise FireactError(f"wiki search needs k >= 1 and max_chars >= 1, got k={k}, max_chars={max_chars}")
        self.k, self.max_chars = k, max_chars
        self.retriever: Retriever = make_retriever(retriever, corpus, progress_every)
        self.name = "wiki" if retriever == "bm25" else f"wiki-{retriever}"

    def retrieve(self, queries: list[str], k: int) -> list[list[tuple[Passage, float]]]:
        """The k best passages per query, an exact title match first (scored as the best hit)."""
        ranked = self.retriever.search(queries, k)
        out = []
        for query, hits in zip(queries, ranked):
            row = self.retriever.titles.get(normalize_query(query))
            if row is not None:
                best = hits[0][1] if hits else 1.0
                hits = [(row, best)] + [h for h in hits if h[0] != row][: k - 1]
            out.append([(self.retriever.store[r], score) for r, score in hits])
        return out

    def __call__(self, query: str) -> str:
        if not normalize_query(query):
            return NONE_OBSERVATION
        (hits,) = self.retrieve([query], self.k)
        return observation([p for p, _ in hits], self.max_chars)


def wiki_coverage_row(tool: WikiSearch, rows: list[dict]) -> dict[str, float]:
    """For HotpotQA rows with supporting titles: shares of questions whose own search returns a gold
    title, both, and the answer (yes/no answers count as not found: no passage says them)."""
    hits = tool.retrieve([r["question"] for r in rows], tool.k)
    n = max(len(rows), 1)
    any_gold = both = answer = 0
    for row, found in zip(rows, hits):
        titles = {p.title for p, _ in found}
        gold = set(row["supporting_titles"])
        any_gold += bool(titles & gold)
        both += gold <= titles
        gold_answer = normalize_answer(row["answer"])
        text = f" {normalize_answer(observation([p for p, _ in found], tool.max_chars))} "
        answer += gold_answer not in ("yes", "no", "") and f" {gold_answer} " in text
    return {"questions": len(rows), "any_gold": any_gold / n, "both_gold": both / n, "answer": answer / n}
