"""Where the FireAct data lives: --data-dir > $FIREACT_DATA_DIR > the user cache dir."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from fireact.data.errors import FireactError

ENV_VAR = "FIREACT_DATA_DIR"


def default_cache_dir() -> Path:
    """~/.cache/fireact (or under $XDG_CACHE_HOME): data, models and the SerpAPI cache live here."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fireact"


def write_lines_atomic(path: str | os.PathLike, lines: Iterable[str]) -> int:
    """Write lines to a temp file, fsync, rename: an interrupted write never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return n


def resolve_data_dir(data_dir: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    if data_dir:
        path, origin = Path(data_dir), "--data-dir"
    elif os.environ.get(ENV_VAR):
        path, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        path, origin = default_cache_dir() / "data", "the default cache dir"
    path = path.expanduser()
    if must_exist and not path.is_dir():
        raise FireactError(
            f"data dir {path} (from {origin}) does not exist: run `fireact data download` or set {ENV_VAR} / --data-dir"
        )
    return path


def snapshot_path(data_dir: Path) -> Path:
    """The offline search snapshot: beside the data dir (shared layout) or inside it (download)."""
    for candidate in (data_dir / "search_snapshot.jsonl", data_dir.parent / "search_snapshot.jsonl"):
        if candidate.is_file():
            return candidate
    raise FireactError(f"no search_snapshot.jsonl in {data_dir} or {data_dir.parent}: run `fireact data download`")
