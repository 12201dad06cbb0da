"""Import FireAct release files (alpaca_format, gpt_format, trajs rollouts) as trajectory JSONL."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fireact.commands.common import add_data_dir, data_dir
from fireact.data.sources import load_source, task_questions
from fireact.data.tasks import TASKS
from fireact.data.trajectory import write_trajectories


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, help="FireAct .json / .jsonl files")
    p.add_argument("--out", required=True, type=Path, help="output trajectory JSONL")
    p.add_argument(
        "--task", choices=list(TASKS), help="force the task instead of inferring it (then no data dir is needed)"
    )
    add_data_dir(p)


def run(args: argparse.Namespace) -> int:
    known = {} if args.task else task_questions(data_dir(args))  # the task's questions label the records
    records = [r for path in args.files for r in load_source(path, known, args.task).trajectories]
    n = write_trajectories(args.out, records)
    counts = Counter((r.task, r.method) for r in records)
    table = Table(title=f"imported {n} trajectories -> {args.out}")
    for col in ("task", "method", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for (task, method), c in sorted(counts.items()):
        table.add_row(task, method, str(c))
    Console().print(table)
    return 0
