"""The offline snapshot tool: FireAct's recorded Google snippets, exact query then BM25."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from fireact.data.paths import json_value, not_utf8, unreadable
from fireact.data.scoring import normalize_answer
from fireact.data.tasks import Example
from fireact.errors import FireactError
from fireact.tools.base import NONE_OBSERVATION, normalize_query


class SnapshotSearch:
    """Search over cached Google snippets (query, snippet, source): exact normalised query, then BM25.

    `k` > 1 returns the top k BM25 snippets joined by " ... " when the query is not cached as is: more
    recall for paraphrased queries than one Google snippet gives (the paper's tool; the default).
    """

    name = "snapshot"

    def __init__(self, path: str | os.PathLike, k: int = 1):
        if k < 1:
            raise FireactError(f"snapshot search k must be >= 1, got {k}")
        self.k = k
        path = Path(path)
        if not path.is_file():
            raise FireactError(f"no search snapshot at {path}: run `fireact data download`")
        self.queries: list[str] = []
        self.snippets: list[str] = []
        try:
            with path.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    row = json_value(line, path, lineno)
                    try:
                        q, s = str(row["query"]), str(row["snippet"])
                    except (KeyError, TypeError) as e:
                        raise FireactError(f"{path}:{lineno}: not a snapshot record {{query, snippet}} ({e})") from None
                    self.queries.append(q)
                    self.snippets.append(s)
        except UnicodeDecodeError:
            raise not_utf8(path) from None
        except OSError as e:
            raise unreadable(path, e, "search snapshot") from None
        if not self.queries:
            raise FireactError(f"{path}: the search snapshot is empty")
        self.exact = {}
        for q, s in zip(self.queries, self.snippets):
            self.exact.setdefault(normalize_query(q), s)
        self._normalized: str | None = None  # all snippets, normalised once for `holds`
        self._retriever = None  # BM25, built at the first search not cached as is
        self._lock = threading.Lock()  # rollouts call tools from several threads

    @property
    def retriever(self):
        import bm25s

        with self._lock:
            if self._retriever is None:
                corpus = [f"{q} {s}" for q, s in zip(self.queries, self.snippets)]
                retriever = bm25s.BM25()
                retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
                self._retriever = retriever
        return self._retriever

    def cached(self, query: str) -> bool:
        """Whether the query is answered by a recorded Google result (cached as is), not by BM25."""
        return normalize_query(query) in self.exact

    def holds(self, answer: str) -> bool:
        """Whether the answer (SQuAD-normalised, whole words) is in some snippet: findable offline."""

        if self._normalized is None:
            self._normalized = "\n".join(f" {normalize_answer(s)} " for s in self.snippets)
        gold = normalize_answer(answer)
        return bool(gold) and f" {gold} " in self._normalized

    def __call__(self, query: str) -> str:
        import bm25s

        key = normalize_query(query)
        if not key:
            return NONE_OBSERVATION
        if key in self.exact:
            return self.exact[key]
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:  # only stopwords
            return NONE_OBSERVATION
        k = min(self.k, len(self.snippets))
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        hits = [self.snippets[int(d)] for d, sc in zip(docs[0], scores[0]) if float(sc) > 0.0]
        return " ... ".join(hits) if hits else NONE_OBSERVATION


def snapshot_coverage(tool: SnapshotSearch, examples: list[Example]) -> dict[str, float]:
    """How far offline search can take a free-form task: the share of questions whose gold answer
    (SQuAD-normalised, whole words) is in some snapshot snippet at all, and in what the tool returns
    for the question itself. An upper bound on EM with this tool, and a lower one on the searches
    an agent needs."""

    scored = [e for e in examples if normalize_answer(e.answer or "")]
    anywhere = sum(tool.holds(e.answer) for e in scored)
    for_question = sum(f" {normalize_answer(e.answer)} " in f" {normalize_answer(tool(e.question))} " for e in scored)
    n = max(len(scored), 1)
    return {"questions": len(scored), "answer_in_snapshot": anywhere / n, "answer_for_the_question": for_question / n}
