"""Re-score trajectory files from each episode's final finish[...] against the task's gold answers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fireact.commands.common import COUNT, add_data_dir, data_dir
from fireact.data.evaluation import Summary, rescore, summarize
from fireact.data.fireact_format import read_any
from fireact.data.tasks import get_task


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, help="FireAct rollout files or fireact trajectory JSONL")
    p.add_argument("--task", default="hotpotqa")
    p.add_argument("--split", default="dev")
    p.add_argument("--expected", type=COUNT, help="questions expected per file; missing ones count as wrong")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    add_data_dir(p)


def print_summary(title: str, s: Summary, as_json: bool) -> None:
    """EM over episodes; with G > 1 samples a question also pass@G, maj@G and the share of questions
    whose samples all got one reward."""
    if as_json:
        print(json.dumps({"file": title, **s.to_dict()}))
        return
    table = Table(title=title, show_header=True)
    cols = ["EM", "F1", "episodes", "questions", "expected", "turns mean", "turns std", "format errors"]
    values = [f"{100 * s.em:.1f}", f"{100 * s.f1:.1f}", str(s.n), str(s.questions), str(s.expected),
              f"{s.turns_mean:.1f}", f"{s.turns_std:.1f}", f"{s.format_errors} ({100 * s.format_error_rate:.1f}%)"]  # fmt: skip
    if s.reward is not None:
        cols.insert(0, "reward")
        values.insert(0, f"{100 * s.reward:.1f}")
    if s.samples > 1:
        cols += [f"pass@{s.samples}", f"maj@{s.samples}", "same reward"]
        values += [f"{100 * s.pass_at_g:.1f}", f"{100 * s.maj_at_g:.1f}", f"{100 * s.same_reward:.1f}%"]
    for col in cols:
        table.add_column(col, justify="right")
    table.add_row(*values)
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    task = get_task(args.task)
    examples = {e.id: e for e in task.load(data_dir(args), args.split)}
    for path in args.files:
        records = rescore(read_any(path), task, examples)
        print_summary(str(path), summarize(records, args.expected), args.json)
    return 0
