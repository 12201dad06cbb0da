"""Arguments shared by several subcommands, and reading the YAML configs they take."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

from fireact.data.paths import read_text, resolve_data_dir
from fireact.data.trajectory import Trajectory
from fireact.errors import FireactError

_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
# jsonargparse's report is a tree: these lines frame it, the remaining first one is the problem
_FRAME = ("Parser key", "Does not validate", "Subtypes:", "Errors:", "Given value", "- Problem with given class_path")


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="FireAct data dir (default: $FIREACT_DATA_DIR, then the user cache)")


def data_dir(args: argparse.Namespace) -> Path:
    return resolve_data_dir(args.data_dir)


def add_env(parser: argparse.ArgumentParser) -> None:
    """`--env` for commands that read records: whose environment they are (its tools and instructions
    render them, for records written without them, e.g. imported from another program)."""
    g = parser.add_argument_group("environment")
    g.add_argument("--env", help="the records' environment: a built-in name, a .py file or a module (load_environment)")
    g.add_argument("--env-args", help="its load_environment keyword arguments, a JSON object")


def adopt_env(records: list[Trajectory], args: argparse.Namespace) -> list[Trajectory]:
    """The records as `--env`'s (unchanged without it)."""
    if args.env is None:
        return records
    from fireact.env.loading import load_environment  # lazy: environments may import a user's code

    root = resolve_data_dir(getattr(args, "data_dir", None), must_exist=False)
    return load_environment(args.env, args.env_args, root if root.is_dir() else None).adopt(records)


def read_config(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping; a FireactError naming the file (and line) when it is not one."""
    import yaml

    try:
        cfg = yaml.safe_load(read_text(path, "config file"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise FireactError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(cfg, dict):
        raise FireactError(f"{path}: a config must be a mapping of keys to values, got {type(cfg).__name__}")
    return cfg


def config_problem(message: str) -> str:
    """jsonargparse's multi-line report ('Parser key "data": ... Parser key "cutoff": Expected ...') as
    one line: the dotted key and the problem."""
    keys = ".".join(_PARSER_KEY.findall(message))
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    problems = [line.removeprefix("- ") for line in lines if not line.startswith(_FRAME)]
    problems = [p for p in problems if p != "Expected a <class 'NoneType'>"] or lines or [""]
    return f"{keys}: {problems[0]}" if keys else problems[0]


# Third-party deprecation notices printed at every run that say nothing about the user's run; the
# match is on each message, so any other warning still shows.
KNOWN_NOISE = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # lightning's pytree use under torch 2.13
    r"Found \d+ module\(s\) in eval mode at the start of training",  # peft's frozen dropout-free layers
    r"`(is_)?gradient_checkpointing(_enable)?` is deprecated",  # transformers' rename to activation_*
    # GRPO's step checkpoints hold the weights after the step, with the step counted: what a resume needs
    r"Using ModelCheckpoint with manual optimization and every_n_train_steps",
)


class _DropKnown(logging.Filter):
    """Drops a logger's records whose message matches one of `messages`."""

    def __init__(self, *messages: str) -> None:
        super().__init__()
        self.known = re.compile("|".join(messages))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.known.search(record.getMessage())


KNOWN_LOG_NOISE = {  # logger -> filter; one object each, so adding it again is a no-op
    # logged at every import of deepspeed on a machine without a GPU (the CPU is what it then uses)
    "DeepSpeed": _DropKnown(
        r"^Setting accelerator to CPU\. If you have GPU or other accelerator, we were unable to detect it\.$"
    ),
}


def quiet_known_noise() -> None:
    """Called first by `fireact` and `python -m fireact.train`."""
    import os
    import warnings

    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # LightningCLI's use of old APIs
    for message in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=message)
    for name, drop in KNOWN_LOG_NOISE.items():  # the library's logger keeps a filter added before it loads
        logging.getLogger(name).addFilter(drop)


def number(kind: type, low: float, high: float | None = None, low_open: bool = False):
    """An argparse type: `kind` in [low, high] (or (low, high] when `low_open`), with a message that says so."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if (value <= low if low_open else value < low) or (high is not None and value > high):
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            raise argparse.ArgumentTypeError(
                f"must be {bound}{f' and <= {high:g}' if high is not None else ''}, got {text}"
            )
        return value

    parse.__name__ = kind.__name__
    return parse


COUNT = number(int, 1)  # a number of things: questions, rounds, epochs, slots, tokens
NON_NEGATIVE = number(int, 0)  # seeds, retries, queue lengths
PORT = number(int, 0, 65535)
POSITIVE = number(float, 0, low_open=True)  # seconds, rates, prices
USD = number(float, 0)  # a budget may be 0
