"""Fetch the FireAct release (github.com/anchen1011/FireAct: data/ and trajs/) into a data dir.

Idempotent (a file whose git blob hash matches is skipped), resumable (partial downloads continue
with an HTTP Range request, within a run after a dropped connection and across runs), retried on
transient faults (fireact.retry) and verified (each file's git blob SHA-1 is checked against the
repository tree before it is moved into place).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fireact.errors import FireactError
from fireact.retry import with_retries

REPO = "anchen1011/FireAct"
REF = "main"
API_URL = "https://api.github.com"
RAW_URL = "https://raw.githubusercontent.com"
# repo folder -> folder in the data dir
FOLDERS = {"data/": "", "trajs/": "trajs/"}


@dataclass(frozen=True)
class RemoteFile:
    path: str  # in the repository
    local: str  # relative to the data dir
    size: int
    sha: str  # git blob SHA-1


def git_blob_sha(path: Path) -> str:
    h = hashlib.sha1()
    h.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


TIMEOUT = 60.0  # seconds without a byte before a request counts as timed out; tests shrink it


def _get(url: str, headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, headers={"User-Agent": "fireact", **(headers or {})})
    return urllib.request.urlopen(req, timeout=TIMEOUT)


def list_remote(api_url: str = API_URL, repo: str = REPO, ref: str = REF) -> list[RemoteFile]:
    url = f"{api_url}/repos/{repo}/git/trees/{ref}?recursive=1"

    def fetch() -> bytes:
        with _get(url) as r:
            return r.read()

    body = with_retries(fetch, f"listing {repo}@{ref} at {api_url}")
    try:
        tree = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FireactError(f"listing {repo}@{ref} at {api_url}: the reply is not JSON (starts {body[:60]!r})") from None
    out = []
    for item in tree.get("tree", []) if isinstance(tree, dict) else []:
        if item.get("type") != "blob":
            continue
        for prefix, local in FOLDERS.items():
            if item["path"].startswith(prefix):
                out.append(RemoteFile(item["path"], local + item["path"][len(prefix) :], item["size"], item["sha"]))
    if not out:
        raise FireactError(f"{repo}@{ref} has no files under {', '.join(FOLDERS)}")
    return out


def fetch_file(f: RemoteFile, root: Path, raw_url: str, repo: str, ref: str, on_bytes: Callable[[int], None]) -> bool:
    """Download one file unless it is already there and verified; returns True if it downloaded."""
    dest = root / f.local
    if dest.is_file() and git_blob_sha(dest) == f.sha:
        on_bytes(f.size)
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    url = f"{raw_url}/{repo}/{ref}/{f.path}"
    reported = 0  # bytes of this file already counted by the progress bar

    def attempt() -> None:
        """One request for the bytes not yet in `part` (a Range request when some are): a retry after
        a dropped connection continues where the last one stopped."""
        nonlocal reported
        have = part.stat().st_size if part.exists() else 0
        if have > f.size:
            part.unlink()
            have = 0
        if have == f.size:  # all there (the checksum below decides)
            return
        with _get(url, {"Range": f"bytes={have}-"} if have else {}) as r:
            with _writing(part):
                out = part.open("ab" if have else "wb")
            with out:
                if have and r.status != 206:  # the server ignored the range: start over
                    out.truncate(0)
                    have = 0
                on_bytes(have - reported)
                reported = have
                for chunk in iter(lambda: r.read(1 << 16), b""):
                    with _writing(part):
                        out.write(chunk)
                    on_bytes(len(chunk))
                    reported += len(chunk)
                with _writing(part):
                    out.flush()
                    os.fsync(out.fileno())
        if reported < f.size:  # urllib returns b"" when the connection closes early: a dropped body
            raise http.client.IncompleteRead(b"", f.size - reported)

    with_retries(attempt, f"download of {f.path} from {raw_url}")
    if git_blob_sha(part) != f.sha:
        part.unlink()
        raise FireactError(f"{f.path}: checksum mismatch after download (removed); run again")
    part.replace(dest)
    return True


@contextmanager
def _writing(part: Path):
    """A local write failure (full disk, permissions) is not the network's: say so, never retry it."""
    try:
        yield
    except OSError as e:
        raise FireactError(
            f"cannot write {part}: {e.strerror or e} (what was written is kept: run again to resume)"
        ) from None
