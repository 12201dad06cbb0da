"""Fetch the FireAct release (github.com/anchen1011/FireAct: data/ and trajs/) into a data dir.

Idempotent (a file whose git blob hash matches is skipped), resumable (partial downloads continue
with an HTTP Range request) and verified (each file's git blob SHA-1 is checked against the
repository tree before it is moved into place).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fireact.data.errors import FireactError

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


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 60):
    req = urllib.request.Request(url, headers={"User-Agent": "fireact", **(headers or {})})
    return urllib.request.urlopen(req, timeout=timeout)


def list_remote(api_url: str = API_URL, repo: str = REPO, ref: str = REF) -> list[RemoteFile]:
    try:
        with _get(f"{api_url}/repos/{repo}/git/trees/{ref}?recursive=1") as r:
            tree = json.load(r)
    except OSError as e:
        raise FireactError(f"cannot list {repo}@{ref} at {api_url}: {e}") from None
    out = []
    for item in tree.get("tree", []):
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
    have = part.stat().st_size if part.exists() else 0
    if have > f.size:
        part.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with _get(f"{raw_url}/{repo}/{ref}/{f.path}", headers) as r, part.open("ab" if have else "wb") as out:
            if have and r.status != 206:  # server ignored the range: start over
                out.truncate(0)
            on_bytes(have)
            for chunk in iter(lambda: r.read(1 << 16), b""):
                out.write(chunk)
                on_bytes(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except OSError as e:
        raise FireactError(f"download of {f.path} failed ({e}); run again to resume") from None
    if git_blob_sha(part) != f.sha:
        part.unlink()
        raise FireactError(f"{f.path}: checksum mismatch after download (removed); run again")
    part.replace(dest)
    return True
