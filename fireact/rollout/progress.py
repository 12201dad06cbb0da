"""Progress of a rollout run: a rich bar on a terminal, a plain line every 30 s off one (CI logs,
nohup, `| tee`), so a long eval never runs silent."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

Progress = Callable[[int, int, float], None]  # (episodes done, total, EM so far)
EVERY_S = float(os.environ.get("FIREACT_PROGRESS_EVERY", 30))  # seconds between plain progress lines


def eta(done: int, total: int, seconds: float) -> str:
    if not done or done >= total:
        return "0s"
    left = seconds / done * (total - done)
    return f"{int(left // 60)}m{int(left % 60):02d}s"


class PlainLines:
    """(done, total, em) -> a line on stderr at most every `every` seconds, and always at the end."""

    def __init__(self, description: str, every: float = EVERY_S):
        self.description, self.every = description, every
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: int, em: float = 0.0) -> None:
        now = time.monotonic()
        if done < total and now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        print(f"{self.description}: {done}/{total} episodes, EM so far {100 * em:.1f}%, {rate:.2f} episodes/s, "
              f"ETA {eta(done, total, now - self.start)}", file=sys.stderr, flush=True)  # fmt: skip


@contextmanager
def rich_progress(description: str = "rollouts") -> Iterator[Progress]:
    """A Progress callback: a rich bar when stderr is a terminal, else plain lines."""
    if not Console(stderr=True).is_terminal:
        yield PlainLines(description)
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())  # fmt: skip
    with RichProgress(*columns, console=Console(stderr=True)) as p:
        tid = p.add_task(description, total=None)
        yield lambda done, total, em=0.0: p.update(tid, completed=done, total=total)
