"""Re-score trajectory files from each episode's final finish[...] against the task's gold answers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fireact.commands.common import add_data_dir, data_dir
from fireact.data.evaluation import Summary, rescore, summarize
from fireact.data.fireact_format import read_any
from fireact.data.tasks import get_task


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, help="FireAct rollout files or fireact trajectory JSONL")
    p.add_argument("--task", default="hotpotqa")
    p.add_argument("--split", default="dev")
    p.add_argument("--expected", type=int, help="episodes expected per file; missing ones count as wrong")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    add_data_dir(p)


def print_summary(title: str, s: Summary, as_json: bool) -> None:
    if as_json:
        keys = ("em", "f1", "n", "expected", "turns_mean", "turns_std", "format_errors", "format_error_rate")
        print(json.dumps({"file": title, **{k: getattr(s, k) for k in keys}}))
        return
    table = Table(title=title, show_header=True)
    for col in ("EM", "F1", "N", "expected", "turns mean", "turns std", "format errors"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{100 * s.em:.1f}",
        f"{100 * s.f1:.1f}",
        str(s.n),
        str(s.expected),
        f"{s.turns_mean:.1f}",
        f"{s.turns_std:.1f}",
        f"{s.format_errors} ({100 * s.format_error_rate:.1f}%)",
    )
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    examples = {e.id: e for e in task.load(data_dir(args), args.split)}
    for path in args.files:
        records = rescore(read_any(path), task, examples)
        print_summary(str(path), summarize(records, args.expected), args.json)
    return 0
