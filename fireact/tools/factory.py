"""One tool factory: the name a command or config gives -> a search tool."""

from __future__ import annotations

import os
from pathlib import Path

from fireact.errors import FireactError
from fireact.tools.base import SearchTool
from fireact.tools.noise import NoisySearch
from fireact.tools.serpapi import SerpAPISearch
from fireact.tools.snapshot import SnapshotSearch


def make_tool(
    name: str,
    data_dir: Path | None = None,
    noise: str = "none",
    noise_p: float = 0.5,
    seed: int = 0,
    cache_path: str | os.PathLike | None = None,
    search_k: int = 1,
) -> SearchTool:
    """`snapshot` (offline default; `search_k` snippets per search) or `serpapi`, optionally noisy."""
    from fireact.data.paths import default_cache_dir, snapshot_path

    if name == "snapshot":
        if data_dir is None:
            raise FireactError("the snapshot tool needs a data dir")
        tool: SearchTool = SnapshotSearch(snapshot_path(data_dir), search_k)
    elif name == "serpapi":
        tool = SerpAPISearch(
            cache_path or default_cache_dir() / "serpapi.jsonl", backend=os.environ.get("FIREACT_SERPAPI_BACKEND")
        )
    else:
        raise FireactError(f"unknown tool {name!r}; choose snapshot or serpapi")
    if noise != "none":
        tool = NoisySearch(tool, noise, noise_p, seed)
    return tool
