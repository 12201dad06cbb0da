"""Lexical retrieval with bm25s over a passage corpus: built by streaming the corpus once (token ids
per passage as small arrays, never the passages' text), saved, then loaded memory-mapped."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import bm25s
import numpy as np
from bm25s.tokenization import Tokenized, Tokenizer

from fireact.errors import FireactError
from fireact.tools.base import normalize_query
from fireact.tools.corpus import load_rows, save_rows, scan
from fireact.tools.index_cache import build_once, index_dir

STOPWORDS = "en"


def build_bm25(corpus: Path, out: Path, progress_every: int = 0) -> dict:
    """Index title + text of every passage into `out`; returns the index's meta."""
    start = time.monotonic()
    tokenizer = Tokenizer(stopwords=STOPWORDS)
    offsets: list[int] = []
    titles: dict[str, int] = {}
    ids: list[np.ndarray] = []
    for offset, passage in scan(corpus):
        row = len(offsets)
        offsets.append(offset)
        titles.setdefault(normalize_query(passage.title), row)
        (tokens,) = tokenizer.streaming_tokenize([f"{passage.title} {passage.text}"])
        ids.append(np.asarray(tokens, dtype=np.int32))
        if progress_every and row and row % progress_every == 0:
            print(f"bm25 index: {row} passages tokenized ({time.monotonic() - start:.0f} s)", flush=True)
    if not offsets:
        raise FireactError(f"{corpus}: the corpus has no passages")
    retriever = bm25s.BM25()
    retriever.index(Tokenized(ids=ids, vocab=tokenizer.get_vocab_dict()), show_progress=False)
    retriever.save(out)
    tokenizer.save_vocab(out)
    save_rows(out, offsets, titles)
    return {"kind": "bm25", "passages": len(offsets), "build_seconds": round(time.monotonic() - start, 2)}


class BM25Retriever:
    """Top-k passage rows for a query by BM25 (bm25s, the corpus's cached index)."""

    name = "bm25"

    def __init__(self, corpus: str | os.PathLike, progress_every: int = 0):
        self.corpus = Path(corpus)
        folder, key = index_dir(self.corpus, "bm25")
        self.meta = build_once(folder, key, lambda tmp: build_bm25(self.corpus, tmp, progress_every))
        self.store, self.titles = load_rows(folder, self.corpus, self.meta["passages"])
        try:
            self.index = bm25s.BM25.load(folder, mmap=True, show_progress=False)
        except (OSError, ValueError) as e:
            raise FireactError(f"bm25 index at {folder} is unreadable ({e}): delete the folder to rebuild it") from None
        self.folder = folder
        self._tokenizer = Tokenizer(stopwords=STOPWORDS)
        self._tokenizer.load_vocab(folder)  # words the corpus never has are dropped from queries
        self._lock = threading.Lock()  # bm25s's retrieve is not documented as thread-safe

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        """(row, score) of the k best passages per query, best first; [] for a query of stopwords only."""
        k = min(k, len(self.store))
        known = self._tokenizer.tokenize(queries, update_vocab=False, return_as="string", show_progress=False)
        # bm25s maps a word the corpus never has to "", which a passage of stopwords only also holds:
        # without this, such a passage is the top hit of every query that shares no word with the corpus
        known = [[t for t in ts if t] for ts in known]
        out: list[list[tuple[int, float]]] = [[] for _ in queries]
        todo = [i for i, ts in enumerate(known) if ts]
        if todo:
            with self._lock:
                docs, scores = self.index.retrieve([known[i] for i in todo], k=k, show_progress=False, n_threads=1)
            for i, d, s in zip(todo, docs, scores):
                out[i] = [(int(r), float(x)) for r, x in zip(d, s) if float(x) > 0.0]
        return out
