"""mkdocs hook: the CLI reference page, generated at build time from `fireact.cli.build_parser()`.

Every `fireact` subcommand (and each action of `fireact data` / `fireact retriever`) gets a section with
its `--help` exactly as the terminal prints it, so the page cannot drift from the code. The parsers are
built without torch or Lightning, so this adds well under a second to the build.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mkdocs.structure.files import File

PAGE = "reference/cli.md"
ROOT = Path(__file__).resolve().parents[2]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    os.environ["COLUMNS"] = "100"  # a stable width, whatever terminal builds the site
    return parser.format_help().rstrip()


def _section(title: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = [f"{'#' * level} `{title}`", "", "```text", _help(parser), "```", ""]
    for name, sub in _subparsers(parser).items():
        lines += _section(f"{title} {name}", sub, level + 1)
    return lines


def render() -> str:
    """The page's markdown: `fireact --help`, then each subcommand's help."""
    sys.path.insert(0, str(ROOT))
    from fireact.cli import build_parser

    parser = build_parser()
    lines = [
        "# CLI reference",
        "",
        "Generated when the site is built, from the same argparse parsers `fireact` runs "
        "(`fireact.cli.build_parser`), so it always matches the installed code. Training is "
        "`python -m fireact.train fit|validate --config FILE.yaml` (Lightning's CLI: "
        "`python -m fireact.train fit --help` lists every option and `--print_config` prints a "
        "resolved config); see [Fine-tune on GPUs](../howto/gpus.md).",
        "",
        "## `fireact`",
        "",
        "```text",
        _help(parser),
        "```",
        "",
    ]
    for name, sub in _subparsers(parser).items():
        lines += _section(f"fireact {name}", sub, 3)
    return "\n".join(lines)


def on_files(files, config):
    """Add the generated page to the site (it is not a file in docs/)."""
    files.append(File.generated(config, PAGE, content=render()))
    return files
