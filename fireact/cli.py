"""`fireact` console script: one subcommand per module in fireact/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

from fireact import __version__
from fireact.commands.common import quiet_known_noise
from fireact.errors import FireactError, printable

# subcommand -> module in fireact.commands exposing `add_arguments(parser)` and `run(args) -> int`
COMMANDS = {
    "data": "data",
    "export": "export",
    "export-data": "export_data",
    "openai-finetune": "openai_finetune",
    "import": "import_",
    "mask-audit": "mask_audit",
    "score": "score",
    "report": "report",
    "generate": "generate",
    "eval": "eval",
    "serve": "serve",
    "retriever": "retriever",
    "expert-iteration": "expert_iteration",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fireact", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fireact {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"fireact.commands.{module}")
        p = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0], description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:

    quiet_known_noise()
    args = build_parser().parse_args(argv)
    try:
        return args._run(args) or 0
    except FireactError as e:
        print(f"fireact {args.command}: error: {printable(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fireact {args.command}: interrupted", file=sys.stderr)
        return 130
