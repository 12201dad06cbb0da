"""Where the FireAct data lives: --data-dir > $FIREACT_DATA_DIR > the user cache dir."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from fireact.errors import FireactError

ENV_VAR = "FIREACT_DATA_DIR"


def default_cache_dir() -> Path:
    """~/.cache/fireact (or under $XDG_CACHE_HOME): data, models and the SerpAPI cache live here."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fireact"


def publish_once(folder: Path, build: Callable[[Path], object]) -> None:
    """Build a cache folder once, whoever asks first. `build(tmp)` writes it into `<folder>.tmp-<pid>`,
    renamed into place whole, so a build killed midway publishes nothing (the next build removes its
    leftovers). Processes that start together (DDP ranks, test workers, two commands) wait on a file
    lock and find it built, instead of each building it."""
    if folder.exists():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.with_name(f"{folder.name}.lock")):
        if folder.exists():
            return
        for stale in folder.parent.glob(f"{folder.name}.tmp-*"):  # builds killed midway (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        tmp.mkdir()
        build(tmp)
        os.replace(tmp, folder)


def unreadable(path: Path, e: OSError, what: str = "file") -> FireactError:
    """The error for a file that cannot be opened: missing, a directory, not permitted."""
    if isinstance(e, FileNotFoundError):
        return FireactError(f"no such {what}: {path}")
    if isinstance(e, IsADirectoryError):
        return FireactError(f"{path}: is a directory, not a {what}")
    if isinstance(e, PermissionError):
        return FireactError(f"{path}: permission denied")
    return FireactError(f"{path}: cannot read ({e.strerror or e})")


def not_utf8(path: Path, data: bytes | None = None) -> FireactError:
    """The error for a file that is not UTF-8 text, naming its first bad line (`data`: the file's
    bytes; read again when not given, as a streaming reader has only the failing chunk)."""
    data = Path(path).read_bytes() if data is None else data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return FireactError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save it as UTF-8")
    return FireactError(f"{path}: not UTF-8 text")


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """A UTF-8 text file's content, or a FireactError naming the file (and line) and what is wrong."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise unreadable(path, e, what) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise not_utf8(path, data) from None


def write_lines_atomic(path: str | os.PathLike, lines: Iterable[str]) -> int:
    """Write lines to a temp file, fsync, rename: an interrupted write never leaves half a file."""
    path = Path(path)
    if path.is_dir():
        raise FireactError(f"{path}: is a directory, not a file to write")
    blocking = next((a for a in path.parents if a.exists() and not a.is_dir()), None)
    if blocking is not None:
        raise FireactError(f"{path}: cannot write there: {blocking} is a file, not a folder")
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as e:
        try:  # cleaning up must not hide why the write failed (e.g. the parent is a regular file)
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise FireactError(f"{path}: cannot write ({e.strerror or e})") from None
    return n


def resolve_data_dir(data_dir: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    if data_dir:
        path, origin = Path(data_dir), "--data-dir"
    elif os.environ.get(ENV_VAR):
        path, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        path, origin = default_cache_dir() / "data", "the default cache dir"
    path = path.expanduser()
    if must_exist and path.exists() and not path.is_dir():
        raise FireactError(f"data dir {path} (from {origin}) is not a directory")
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


def json_value(text: str | bytes, path: str | os.PathLike, lineno: int | None = None) -> Any:
    """`json.loads`, or one FireactError naming file:line: bad JSON, and JSON nested so deeply that
    Python's parser would blow its recursion limit (a traceback otherwise)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FireactError(f"{path}:{lineno or e.lineno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        where = f"{path}:{lineno}" if lineno else str(path)
        raise FireactError(f"{where}: JSON nested too deeply to be a record") from None


def read_jsonl(path: str | os.PathLike, what: str = "JSONL file") -> Iterator[tuple[int, Any]]:
    """(line number, value) of every non-blank line; FireactError naming file:line when one is not JSON."""
    for lineno, line in enumerate(read_text(path, what).splitlines(), 1):
        if line.strip():
            yield lineno, json_value(line, path, lineno)
