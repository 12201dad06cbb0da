"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from fireact.data.paths import resolve_data_dir
from fireact.data.tasks import TASKS


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="FireAct data dir (default: $FIREACT_DATA_DIR, then the user cache)")


def data_dir(args: argparse.Namespace) -> Path:
    return resolve_data_dir(args.data_dir)


def add_selection(parser: argparse.ArgumentParser, split: str = "dev") -> None:
    """The paper's question selection: shuffle indices with Random(seed), take [offset:offset+n]."""
    parser.add_argument("--task", default="hotpotqa", help=f"one of {', '.join(TASKS)}")
    parser.add_argument("--split", default=split)
    parser.add_argument("--n", type=int, default=None, help="number of questions (default: all)")
    parser.add_argument("--seed", type=int, default=233, help="selection shuffle seed (the paper's: 233)")
    parser.add_argument("--offset", type=int, default=0)
