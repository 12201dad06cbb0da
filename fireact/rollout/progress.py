"""Progress of a rollout run: a callback, or a rich bar."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]  # (episodes done, total)


def rich_progress(description: str = "rollouts"):
    """A context manager yielding a Progress callback that drives a rich progress bar."""
    from contextlib import contextmanager

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    @contextmanager
    def bar():
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ) as p:
            tid = p.add_task(description, total=None)
            yield lambda done, total: p.update(tid, completed=done, total=total)

    return bar()
