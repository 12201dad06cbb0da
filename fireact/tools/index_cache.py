"""Where a corpus's indexes live: one folder per (corpus bytes, retriever), built once, published
atomically (a build killed midway leaves no index, only a `.tmp-*` folder the next build removes)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from fireact.data.paths import default_cache_dir, publish_once
from fireact.errors import FireactError
from fireact.tools.corpus import fingerprint


def index_root() -> Path:
    """$FIREACT_INDEX_DIR, else ~/.cache/fireact/indexes."""
    return Path(os.environ.get("FIREACT_INDEX_DIR") or default_cache_dir() / "indexes")


def index_dir(corpus: str | os.PathLike, kind: str) -> tuple[Path, str]:
    """(folder of the corpus's `kind` index, corpus fingerprint)."""
    key = known_fingerprint(Path(corpus))
    return index_root() / f"{Path(corpus).stem}-{key}" / kind, key


def known_fingerprint(corpus: Path) -> str:
    """The corpus's sha256 key, hashed again only when its size or mtime changed (wiki-18's 13 GB
    take ~30 s to hash: not at every start)."""
    record = index_root() / "fingerprints.json"
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        known = {}
    try:
        stat = corpus.stat()
    except OSError:
        return fingerprint(corpus)  # says what is wrong with the path
    where, stamp = str(corpus.resolve()), [stat.st_size, stat.st_mtime_ns]
    if known.get(where, {}).get("stamp") == stamp:
        return known[where]["key"]
    key = fingerprint(corpus)
    known[where] = {"stamp": stamp, "key": key}
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(known, indent=1))
    os.replace(tmp, record)
    return key


def build_once(folder: Path, key: str, build: Callable[[Path], dict]) -> dict:
    """The index's meta.json; `build(tmp)` writes the index into tmp and returns its meta when there
    is none yet (`publish_once`: one process builds, those started with it wait)."""

    def write(tmp: Path) -> None:
        meta = {**build(tmp), "fingerprint": key}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))

    publish_once(folder, write)
    return read_meta(folder, key)


def read_meta(folder: Path, key: str) -> dict:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise FireactError(
            f"index at {folder} is unreadable ({type(e).__name__}): delete the folder to rebuild it"
        ) from None
    if meta.get("fingerprint") != key:
        raise FireactError(
            f"index at {folder} was built from another corpus (fingerprint {meta.get('fingerprint')} != {key}): "
            "delete the folder to rebuild it"
        )
    return meta
