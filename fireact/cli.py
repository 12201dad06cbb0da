"""The `fireact` console script. Each subcommand is a module of fireact/commands/ exposing
`add_arguments(parser)` and `run(args) -> int`; its docstring is its help, so `fireact --help`, the
subcommand's `--help` and the documentation's CLI reference (generated from `build_parser`) say the
same thing."""

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
    "rollouts": "rollouts",
    "retriever": "retriever",
    "expert-iteration": "expert_iteration",
}


DESCRIPTION = """Fine-tune language agents (FireAct, Chen et al. 2023): collect a strong model's agent
trajectories, check which tokens carry the loss, fine-tune a smaller model on them
(`python -m fireact.train fit --config ...`), then evaluate, compare, export and serve it."""

EPILOG = """A typical path: fireact data download -> fireact generate (or fireact import) -> fireact mask-audit ->
python -m fireact.train fit -> fireact export -> fireact eval -> fireact report. `fireact COMMAND --help`
says what each command does and takes."""


def summary(doc: str | None) -> str:
    """A command's one-line help: its docstring's first paragraph, joined onto one line."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fireact", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"fireact {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"fireact.commands.{module}")
        p = sub.add_parser(
            name,
            help=summary(mod.__doc__),
            description=mod.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
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
