"""One tool factory: the name a command or config gives -> a search tool."""

from __future__ import annotations

import os
from pathlib import Path

from fireact.data.paths import default_cache_dir, snapshot_path
from fireact.data.wiki_questions import default_corpus
from fireact.errors import FireactError
from fireact.tools.base import SearchTool
from fireact.tools.http_retriever import HTTPRetriever
from fireact.tools.noise import NoisySearch
from fireact.tools.serpapi import SerpAPISearch
from fireact.tools.snapshot import SnapshotSearch
from fireact.tools.wiki import WikiSearch


def make_tool(
    name: str,
    data_dir: Path | None = None,
    noise: str = "none",
    noise_p: float = 0.5,
    seed: int = 0,
    cache_path: str | os.PathLike | None = None,
    search_k: int = 1,
    corpus: str | os.PathLike | None = None,
    retriever: str = "bm25",
) -> SearchTool:
    """`snapshot` (the paper's replayed Google; `search_k` snippets per search), `wiki` (a local
    passage corpus; `search_k` passages), `serpapi`, or a retrieval server's URL; optionally noisy."""
    if name == "wiki":
        if corpus is None and data_dir is None:
            raise FireactError("the wiki tool needs --corpus PATH or a data dir beside hotpotqa_wiki/")
        tool: SearchTool = WikiSearch(corpus or default_corpus(data_dir), retriever, search_k)
    elif name.startswith(("http://", "https://")):
        tool = HTTPRetriever(name, search_k)
    elif name == "snapshot":
        if data_dir is None:
            raise FireactError("the snapshot tool needs a data dir")
        tool = SnapshotSearch(snapshot_path(data_dir), search_k)
    elif name == "serpapi":
        tool = SerpAPISearch(
            cache_path or default_cache_dir() / "serpapi.jsonl", backend=os.environ.get("FIREACT_SERPAPI_BACKEND")
        )
    else:
        raise FireactError(f"unknown tool {name!r}; choose snapshot, wiki, serpapi or a retrieval server's http:// URL")
    if noise != "none":
        tool = NoisySearch(tool, noise, noise_p, seed)
    return tool
