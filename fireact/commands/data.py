"""Data: download the FireAct release, build the search snapshot, or write the synthetic world."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from fireact.commands.common import COUNT, NON_NEGATIVE
from fireact.data import download
from fireact.data.paths import resolve_data_dir, snapshot_path
from fireact.data.snapshot import build_snapshot
from fireact.data.synthetic import write_world
from fireact.data.tasks import get_task, select, wiki_rows
from fireact.data.wiki_questions import SPLITS as WIKI_SPLITS
from fireact.data.wiki_questions import default_corpus
from fireact.errors import FireactError
from fireact.tools.retrievers import RETRIEVERS
from fireact.tools.snapshot import SnapshotSearch, snapshot_coverage
from fireact.tools.wiki import WikiSearch, wiki_coverage_row


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    d = sub.add_parser("download", help="fetch FireAct's data/ and trajs/ (idempotent, resumable)")
    d.add_argument("--data-dir", help="where to put it (default: $FIREACT_DATA_DIR, then the user cache)")
    d.add_argument("--repo", default=download.REPO)
    d.add_argument("--ref", default=download.REF)
    d.add_argument("--api-url", default=download.API_URL, help=argparse.SUPPRESS)
    d.add_argument("--raw-url", default=download.RAW_URL, help=argparse.SUPPRESS)
    sub.add_parser("path", help="print the resolved data dir").add_argument("--data-dir")
    s = sub.add_parser("snapshot", help="(re)build search_snapshot.jsonl from the data dir's trajectories")
    s.add_argument("--data-dir")
    c = sub.add_parser("coverage", help="how many gold answers the offline search snapshot can find, per task")
    c.add_argument("--task", nargs="+", default=["hotpotqa", "bamboogle"], help="free-form tasks (EM on entities)")
    c.add_argument("--split", help="default: dev, or the task's first split")
    c.add_argument("--n", type=COUNT, help="first N questions of the paper's seeded selection (default: all)")
    c.add_argument("--search-k", type=COUNT, default=1, help="snippets (passages) per search, as the agents' tool")
    c.add_argument(
        "--tool",
        default="snapshot",
        choices=("snapshot", "wiki"),
        help="wiki: gold-title recall and answer reachability of the wiki tool on HotpotQA's wiki splits",
    )
    c.add_argument("--corpus", help="wiki: passage JSONL (default: hotpotqa_wiki/paragraphs.jsonl)")
    c.add_argument("--retriever", default="bm25", choices=RETRIEVERS)
    c.add_argument("--data-dir")
    w = sub.add_parser("synthetic", help="write the invented offline world (task `synthetic`) as a data dir")
    w.add_argument("--out", required=True, help="data dir to write")
    w.add_argument("--people", type=COUNT, default=120)
    w.add_argument("--dev", type=COUNT, default=20, help="people held out for the dev split")
    w.add_argument("--seed", type=NON_NEGATIVE, default=0)


def run(args: argparse.Namespace) -> int:
    if args.action == "path":
        print(resolve_data_dir(args.data_dir, must_exist=False))
        return 0
    if args.action == "synthetic":
        root = write_world(args.out, n_people=args.people, n_dev=args.dev, seed=args.seed)
        print(f"wrote the synthetic world to {root} (task synthetic, splits train/dev)")
        return 0
    if args.action == "coverage":
        return coverage(args)
    if args.action == "snapshot":
        path, n = build_snapshot(resolve_data_dir(args.data_dir))
        print(f"search snapshot: {n} cached Google snippets -> {path}")
        return 0
    root = resolve_data_dir(args.data_dir, must_exist=False)
    files = download.list_remote(args.api_url, args.repo, args.ref)
    fetched = 0
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns) as progress:
        bar = progress.add_task(f"FireAct -> {root}", total=sum(f.size for f in files))
        for f in files:
            fetched += download.fetch_file(
                f, root, args.raw_url, args.repo, args.ref, lambda n: progress.advance(bar, n)
            )
    print(f"{len(files)} files in {root} verified ({fetched} downloaded, {len(files) - fetched} already there)")
    path, n = build_snapshot(root)
    print(f"search snapshot: {n} cached Google snippets -> {path}")
    return 0


def coverage(args: argparse.Namespace) -> int:
    root = resolve_data_dir(args.data_dir)
    if args.search_k < 1:
        raise FireactError(f"--search-k must be >= 1, got {args.search_k}")
    if args.tool == "wiki":
        return wiki_coverage(args, root)
    tool = SnapshotSearch(snapshot_path(root), k=args.search_k)
    table = Table(title=f"offline search snapshot ({len(tool.snippets)} snippets, k={args.search_k}) vs gold answers")
    for col in ("task/split", "questions", "answer in some snippet", "answer in the search for the question"):
        table.add_column(col, justify="left" if col == "task/split" else "right")
    for name in args.task:
        task = get_task(name)
        if not task.uses_f1:
            raise FireactError(
                f"--task {name}: its answers are yes/no or a letter, which no snippet can be searched for"
            )
        split = args.split or ("dev" if "dev" in task.splits else task.splits[0])
        c = snapshot_coverage(tool, select(task.load(root, split), args.n))
        table.add_row(
            f"{name}/{split}", str(c["questions"]), f"{100 * c['answer_in_snapshot']:.1f}%",
            f"{100 * c['answer_for_the_question']:.1f}%",
        )  # fmt: skip
    Console().print(table)
    return 0


def wiki_coverage(args: argparse.Namespace, root) -> int:
    """Per wiki split: how often the tool's result for the question itself holds a gold title
    (any / both of them) and the gold answer (whole normalised words)."""
    tool = WikiSearch(args.corpus or default_corpus(root), args.retriever, args.search_k)
    table = Table(title=f"wiki tool ({tool.name}, {len(tool.retriever.store)} passages, k={args.search_k}) "
                        "searched with each question")  # fmt: skip
    for col in ("split", "questions", "a gold title", "both gold titles", "answer in the observation"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split in WIKI_SPLITS:
        split_rows = wiki_rows(root, split)[: args.n]
        c = wiki_coverage_row(tool, split_rows)
        table.add_row(split, str(c["questions"]), f"{100 * c['any_gold']:.1f}%", f"{100 * c['both_gold']:.1f}%",
                      f"{100 * c['answer']:.1f}%")  # fmt: skip
    Console(width=120).print(table)
    return 0
