"""Local retrievers by name, and the hybrid of two: reciprocal-rank fusion of BM25 and dense."""

from __future__ import annotations

import os
from typing import Protocol

from fireact.errors import FireactError
from fireact.tools.bm25 import BM25Retriever
from fireact.tools.corpus import PassageStore

RETRIEVERS = ("bm25", "dense", "hybrid")
RRF_K = 60  # the usual reciprocal-rank-fusion constant (Cormack et al. 2009)
CANDIDATES = 50  # each retriever's ranking fused for the hybrid


class Retriever(Protocol):
    name: str
    store: PassageStore
    titles: dict[str, int]  # normalised title -> row
    meta: dict  # kind, passages, build_seconds

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]: ...


class HybridRetriever:
    """BM25 and dense rankings fused by 1 / (RRF_K + rank); the score is the fused one."""

    name = "hybrid"

    def __init__(self, corpus: str | os.PathLike, progress_every: int = 0):
        from fireact.tools.dense import DenseRetriever  # lazy: torch takes ~1.5 s to import; bm25 needs none of it

        self.parts = (BM25Retriever(corpus, progress_every), DenseRetriever(corpus, progress_every))
        self.store, self.titles = self.parts[0].store, self.parts[0].titles
        seconds = sum(r.meta["build_seconds"] for r in self.parts)
        self.meta = {"kind": "hybrid", "passages": len(self.store), "build_seconds": seconds}

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        rankings = [r.search(queries, max(k, CANDIDATES)) for r in self.parts]
        out = []
        for per_query in zip(*rankings):
            fused: dict[int, float] = {}
            for ranking in per_query:
                for rank, (row, _) in enumerate(ranking):
                    fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
            out.append(sorted(fused.items(), key=lambda x: -x[1])[:k])
        return out


def make_retriever(name: str, corpus: str | os.PathLike, progress_every: int = 0) -> Retriever:
    if name == "bm25":
        return BM25Retriever(corpus, progress_every)
    if name == "hybrid":
        return HybridRetriever(corpus, progress_every)
    if name == "dense":
        from fireact.tools.dense import DenseRetriever  # lazy: torch takes ~1.5 s to import; bm25 needs none of it

        return DenseRetriever(corpus, progress_every)
    raise FireactError(f"unknown retriever {name!r}; choose {', '.join(RETRIEVERS)}")
