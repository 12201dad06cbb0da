"""A passage corpus on disk, read as a stream: HotpotQA `{title, sentences}` lines, Search-R1 /
FlashRAG `{id, contents: "\\"Title\\"\\ntext"}` lines, or DPR-style `{id, title, text}` lines.

Nothing here holds the corpus in memory: `scan` yields each passage with its byte offset, so an
index keeps offsets and `PassageStore` seeks a passage back when a search returns it (wiki-18's
21M passages are ~13 GB of text).
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fireact.data.paths import unreadable
from fireact.errors import FireactError

FORMATS = "{title, sentences} (HotpotQA), {id, contents} (Search-R1 / FlashRAG) or {id, title, text} (DPR)"


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    def contents(self) -> str:
        """Search-R1's document text: the quoted title on the first line, then the text."""
        return f'"{self.title}"\n{self.text}'


def parse_passage(line: bytes | str, where: str, lineno: int) -> Passage:
    """One corpus line as a Passage; FireactError naming file:line when it is not one."""
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise FireactError(f"{where}:{lineno}: not a JSON passage ({type(e).__name__}); expected {FORMATS}") from None
    if isinstance(row, dict):
        if isinstance(row.get("title"), str) and isinstance(row.get("sentences"), list):
            bad = [type(s).__name__ for s in row["sentences"] if not isinstance(s, str)]
            if bad:
                raise FireactError(f"{where}:{lineno}: `sentences` must be strings, got {bad[0]}")
            return Passage(str(row.get("id", lineno - 1)), row["title"], "".join(map(str, row["sentences"])).strip())
        if isinstance(row.get("contents"), str):
            title, _, text = row["contents"].partition("\n")
            return Passage(str(row.get("id", lineno - 1)), title.strip().strip('"'), text.strip())
        if isinstance(row.get("title"), str) and isinstance(row.get("text"), str):
            return Passage(str(row.get("id", lineno - 1)), row["title"], row["text"].strip())
    keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
    raise FireactError(f"{where}:{lineno}: not a passage (got {keys}); expected {FORMATS}")


def scan(path: str | os.PathLike) -> Iterator[tuple[int, Passage]]:
    """(byte offset, passage) for every non-blank line, streamed; FireactError at the end when two
    passages share an id (`/retrieve` would answer two documents under one id)."""
    path = existing(path)
    ids = array.array("Q")  # 8-byte hashes, not the ids: wiki-18's 21M fit in 170 MB
    try:
        with path.open("rb") as f:
            offset, lineno = 0, 0
            for line in f:
                lineno += 1
                if line.strip():
                    passage = parse_passage(line, str(path), lineno)
                    ids.append(int.from_bytes(hashlib.blake2b(passage.id.encode(), digest_size=8).digest(), "little"))
                    yield offset, passage
                offset += len(line)
    except OSError as e:
        raise unreadable(path, e, "corpus") from None
    _check_unique(np.frombuffer(ids, dtype=np.uint64), path)


def _check_unique(hashes: np.ndarray, path: Path) -> None:
    values, counts = np.unique(hashes, return_counts=True)
    if len(values) == len(hashes):
        return
    twice = np.flatnonzero(hashes == values[counts > 1][0])
    lines = [int(i) + 1 for i in twice[:2]]  # passage numbers (blank lines aside)
    raise FireactError(f"{path}: passages {lines[0]} and {lines[1]} share an id: ids must be unique")


def existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise FireactError(f"--corpus {path} is a directory: pass the passages' JSONL file ({FORMATS})")
    if not path.is_file():
        raise FireactError(f"no corpus at {path}: pass --corpus PATH (a JSONL of {FORMATS})")
    return path


def fingerprint(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of the corpus bytes (first 16 hex digits): the key of its index in the cache."""
    h = hashlib.sha256()
    try:
        with existing(path).open("rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as e:
        raise unreadable(Path(path), e, "corpus") from None
    return h.hexdigest()[:16]


def save_rows(out: Path, offsets: list[int], titles: dict[str, int]) -> None:
    """What every index keeps beside its vectors: each row's byte offset, and normalised title -> row."""
    np.save(out / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    (out / "titles.json").write_text(json.dumps(titles, ensure_ascii=False))


def load_rows(folder: Path, corpus: Path, passages: int) -> tuple[PassageStore, dict[str, int]]:
    try:
        offsets = np.load(folder / "offsets.npy", mmap_mode="r")
        titles = json.loads((folder / "titles.json").read_text())
    except (OSError, ValueError) as e:
        raise FireactError(f"index at {folder} is unreadable ({e}): delete the folder to rebuild it") from None
    if len(offsets) != passages:
        raise FireactError(f"index at {folder} does not match its meta.json: delete the folder to rebuild it")
    return PassageStore(corpus, offsets), titles


class PassageStore:
    """Passages by row number, read back from the corpus file at saved byte offsets (memory-mapped)."""

    def __init__(self, corpus: str | os.PathLike, offsets: np.ndarray):
        self.path = Path(corpus)
        self.offsets = offsets
        self._lock = threading.Lock()
        self._file = self.path.open("rb")

    def __len__(self) -> int:
        return len(self.offsets)

    def line(self, row: int) -> bytes:
        with self._lock:  # one file handle shared by the rollout engine's tool threads
            self._file.seek(int(self.offsets[row]))
            return self._file.readline()

    def __getitem__(self, row: int) -> Passage:
        return parse_passage(self.line(row), str(self.path), row + 1)


def observation(passages: list[Passage], max_chars: int) -> str:
    """What the agent reads: each passage as "Title: text", cut at a sentence end (else a word) so all
    of them fit in `max_chars` (500 characters is ~120 tokens: a few fit a 512-token step budget)."""
    if not passages:
        return "None"
    budget = max(max_chars // len(passages), 40)
    return " ... ".join(_bounded(f"{p.title}: {p.text}", budget) for p in passages)


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind('." '))
    if end > limit // 3:
        return head[: end + 1]
    return head.rsplit(" ", 1)[0] + " ..."
