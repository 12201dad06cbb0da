"""FireAct's own worlds as named environments (`--env NAME`, keyword arguments by `--env-args`).

- `hotpotqa`, `bamboogle`, `strategyqa`, `mmlu`, `synthetic`: the paper's tasks (and the synthetic
  world) with a search tool: `split`, `tool` (snapshot, wiki, serpapi or a retrieval URL), `search_k`.
- `wiki`: HotpotQA's questions in the local Wikipedia world (`split`: wiki-train, wiki-val, wiki-eval).
- `wikienv`: the same questions with ReAct's own Wikipedia actions (`fireact.tools.wiki_pages`).
- `company-db`: questions over a generated SQLite database, its tools from the `mcp-server-sqlite` MCP
  server (`fireact.env.company_db`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fireact.data.tasks import TASKS, get_task, select
from fireact.data.wiki_questions import SPLITS as WIKI_SPLITS
from fireact.data.wiki_questions import default_corpus
from fireact.env.company_db import load_environment as company_db_environment
from fireact.env.environment import Environment
from fireact.errors import FireactError
from fireact.tools.base import SearchTool
from fireact.tools.factory import make_tool
from fireact.tools.function import search_tool
from fireact.tools.wiki_pages import WikiPages

SEED = 233  # the paper's question selection (`--seed`'s default)


def task_environment(task: str, search: SearchTool, examples: Any = ()) -> Environment:
    """A paper task's world: its questions, the search tool, its scorer as the reward."""
    return Environment(task, list(examples), [search_tool(search)], task=get_task(task))


def _need(data_dir: Path | None, name: str) -> Path:
    if data_dir is None:
        raise FireactError(f"environment {name} needs the FireAct data dir (--data-dir or $FIREACT_DATA_DIR)")
    return data_dir


def _paper_task(name: str) -> Callable[..., Environment]:
    def load(data_dir: Path | None, split: str | None = None, tool: str | None = None, search_k: int = 1,
             **tool_kw: Any) -> Environment:  # fmt: skip
        root = _need(data_dir, name)
        task = TASKS[name]
        split = split or ("dev" if "dev" in task.splits else task.splits[0])
        ordered = select(task.load(root, split), None, task.selection_seed(split, SEED))  # --task's selection
        examples = [asdict(e) for e in ordered]
        default = "wiki" if split in WIKI_SPLITS else "snapshot"
        search = make_tool(tool or default, root, search_k=search_k, **tool_kw)
        return task_environment(name, search, examples)

    return load


def wiki(data_dir: Path | None, split: str = "wiki-eval", search_k: int = 1, retriever: str = "bm25") -> Environment:
    """HotpotQA in the local Wikipedia world, searched by BM25 (or a dense/hybrid retriever)."""
    if split not in WIKI_SPLITS:
        raise FireactError(f"environment wiki: split {split!r} is not one of {', '.join(WIKI_SPLITS)}")
    return _paper_task("hotpotqa")(data_dir, split, "wiki", search_k, retriever=retriever)


def wikienv(data_dir: Path | None, split: str = "wiki-eval", corpus: str | None = None) -> Environment:
    """ReAct's Wikipedia actions (search a page, look up a keyword in it) over the wiki corpus."""
    root = _need(data_dir, "wikienv")
    if split not in WIKI_SPLITS:
        raise FireactError(f"environment wikienv: split {split!r} is not one of {', '.join(WIKI_SPLITS)}")
    pages = WikiPages(corpus or default_corpus(root))
    examples = [asdict(e) for e in TASKS["hotpotqa"].load(root, split)]  # the wiki splits are in selection order
    return Environment("wikienv", examples, pages.tools(), task=TASKS["hotpotqa"])


def company_db(data_dir: Path | None = None, **kwargs: Any) -> Environment:
    return company_db_environment(**kwargs)


BUILTINS: dict[str, Callable[..., Environment]] = {
    **{name: _paper_task(name) for name in TASKS},
    "wiki": wiki,
    "wikienv": wikienv,
    "company-db": company_db,
}
