"""The gateway's episode log: each agent program's chat calls held per episode id until the episode
is closed with its reward (or abandoned), then appended to DIR/episodes.jsonl as one line.

One `os.write` of a whole line to a file opened for appending: a server killed with -9 loses no
closed episode and leaves no half line behind it (a line cut by a full disk or a power loss is
reported and skipped by the reader, and the next line starts clean). Memory is bounded: at most
`max_calls` calls and `max_bytes` of messages per open episode, and an episode without a call for
`idle_seconds` is written as unscored and dropped.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fireact.data.recordings import RECORD_FILE
from fireact.errors import FireactError
from fireact.serve.http_app import BadRequest

EPISODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def check_episode_id(episode: str) -> str:
    """The id as given, or 400: letters, digits and `_ . : -`, at most 128, no `..` (no path tricks)."""
    if not EPISODE_ID.fullmatch(episode) or ".." in episode:
        shown = episode if len(episode) <= 40 else episode[:40] + "..."
        raise BadRequest(f"episode id {shown!r} is not valid: 1-128 letters, digits, '_', '.', ':' or '-', "
                         "starting with a letter or digit, no '..'", "episode")  # fmt: skip
    return episode


@dataclass
class _Open:
    started: float
    calls: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0
    last: float = 0.0


class Recorder:
    """Thread-safe: calls are added from the server's workers while episodes close and expire."""

    def __init__(self, root: str | Path, model: str, idle_seconds: float = 600.0, max_calls: int = 512,
                 max_bytes: int = 64 << 20):  # fmt: skip
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise FireactError(f"--record {root}: is a file, not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.path = self.root / RECORD_FILE
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as e:
            raise FireactError(f"--record {root}: cannot write there ({e.strerror})") from None
        self.model, self.idle_seconds, self.max_calls, self.max_bytes = model, idle_seconds, max_calls, max_bytes
        self.open: dict[str, _Open] = {}
        self.done: set[str] = self._written()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._expire_loop, name="fireact-recorder", daemon=True).start()

    def _written(self) -> set[str]:
        """The ids already in the file (a restarted gateway refuses to reopen them); a torn last line
        from an older crash gets its newline, so the next episode starts a line of its own."""
        ids, torn = set(), False
        with self.path.open("rb") as f:
            for line in f:
                torn = not line.endswith(b"\n")
                try:
                    ids.add(json.loads(line)["episode"])
                except (ValueError, KeyError, TypeError):
                    continue
        if torn:
            os.write(self.fd, b"\n")
        return ids

    def check_open(self, episode: str) -> None:
        """409 for an episode already written; 413 for one at its bounds (before the model is asked)."""
        with self.lock:
            if episode in self.done:
                raise BadRequest(f"episode {episode!r} is already closed; start a new episode id", "episode",
                                 status=409)  # fmt: skip
            ep = self.open.get(episode)
            if ep is not None and (len(ep.calls) >= self.max_calls or ep.size >= self.max_bytes):
                raise BadRequest(f"episode {episode!r} reached the recorder's bound ({self.max_calls} calls, "
                                 f"{self.max_bytes} bytes); close it", "episode", status=413)  # fmt: skip

    def add(self, episode: str, request: dict[str, Any], answer: dict[str, Any], size: int) -> None:
        """One chat call of `episode`: what the program sent (messages, tools; `size`: its body's bytes,
        what the episode's bound counts) and what it got."""
        call = {"messages": request["messages"], "tools": request["tools"] or None, **answer, "at": time.time()}
        with self.lock:
            if episode in self.done:  # closed while this call was decoding: the call is not part of it
                return
            ep = self.open.setdefault(episode, _Open(time.time()))
            ep.calls.append(call)
            ep.size += size
            ep.last = time.time()

    def close(self, episode: str, reward: float, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the episode with its reward: 404 for an id never seen, 409 for one already written."""
        with self.lock:
            if episode in self.done:
                raise BadRequest(f"episode {episode!r} is already closed", "episode", status=409)
            ep = self.open.pop(episode, None)
            if ep is None:
                raise BadRequest(f"no episode {episode!r}: it made no chat call through this gateway", "episode",
                                 status=404)  # fmt: skip
            self._write(episode, ep, reward, info, closed=True)
        return {"episode": episode, "reward": reward, "calls": len(ep.calls), "status": "closed"}

    def _write(self, episode: str, ep: _Open, reward: float | None, info: dict[str, Any] | None, closed: bool) -> None:
        record = {"episode": episode, "closed": closed, "reward": reward, "info": info, "model": self.model,
                  "started": ep.started, "ended": time.time(), "calls": ep.calls}  # fmt: skip
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        while data:  # one write for a regular file; a partial one (disk full) goes on where it stopped
            data = data[os.write(self.fd, data) :]
        os.fsync(self.fd)
        self.done.add(episode)

    def expire(self, now: float | None = None) -> int:
        """Write the episodes idle for `idle_seconds` as unscored; how many."""
        now = time.time() if now is None else now
        with self.lock:
            idle = [e for e, ep in self.open.items() if now - ep.last >= self.idle_seconds]
            for episode in idle:
                self._write(episode, self.open.pop(episode), None, {"abandoned_after_s": self.idle_seconds}, False)
        return len(idle)

    def _expire_loop(self) -> None:
        while not self._stop.wait(min(30.0, self.idle_seconds)):
            self.expire()

    def close_all(self) -> None:
        """At shutdown: every open episode is written as unscored (never lost), then the file closed."""
        self._stop.set()
        with self.lock:
            for episode in list(self.open):
                self._write(episode, self.open.pop(episode), None, {"open_at_shutdown": True}, False)
            os.close(self.fd)
