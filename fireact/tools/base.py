"""What every search tool is: a callable from a query to an observation string."""

from __future__ import annotations

import re
from typing import Protocol

NONE_OBSERVATION = "None"


class ToolError(RuntimeError):
    """A tool could not answer (e.g. a replay cache miss offline): ends the episode with `error`."""


class SearchTool(Protocol):
    """A tool may also set `blocking_io = True` (it waits on the network): the rollout engine then
    calls it on a thread so one slow search does not stall the other episodes."""

    name: str

    def __call__(self, query: str) -> str: ...


def normalize_query(q: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", q.lower()).split())
