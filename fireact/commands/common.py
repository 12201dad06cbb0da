"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from fireact.data.paths import resolve_data_dir


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="FireAct data dir (default: $FIREACT_DATA_DIR, then the user cache)")


def data_dir(args: argparse.Namespace) -> Path:
    return resolve_data_dir(args.data_dir)
