"""Data: download the FireAct release, build the search snapshot, or write the synthetic world."""

from __future__ import annotations

import argparse

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from fireact.data import download
from fireact.data.paths import resolve_data_dir
from fireact.data.snapshot import build_snapshot
from fireact.data.synthetic import write_world


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
    w = sub.add_parser("synthetic", help="write the invented offline world (task `synthetic`) as a data dir")
    w.add_argument("--out", required=True, help="data dir to write")
    w.add_argument("--people", type=int, default=120)
    w.add_argument("--dev", type=int, default=20, help="people held out for the dev split")
    w.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.action == "path":
        print(resolve_data_dir(args.data_dir, must_exist=False))
        return 0
    if args.action == "synthetic":
        root = write_world(args.out, n_people=args.people, n_dev=args.dev, seed=args.seed)
        print(f"wrote the synthetic world to {root} (task synthetic, splits train/dev)")
        return 0
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
