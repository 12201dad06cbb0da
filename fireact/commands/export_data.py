"""Export a training set as the DataModule mixes it, for a hosted fine-tune or another training tool.

The trajectories are exactly the ones `TrajectoryDataModule` would train on with the same options
(sources, mix, seed, filters, the held-out questions removed, over-cutoff ones dropped with
`--truncation drop`), taken from a training config's `data:` block (`--config`) and/or flags, in a
seeded shuffled order. Formats: `openai` (chat fine-tuning JSONL, FireAct's gpt_format), `alpaca`
(FireAct's alpaca JSON), `hf` (a `datasets` folder for `load_from_disk`; `--push-to-hub` uploads it).
The provenance card (cells, counts, source hashes) is written beside the output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fireact.commands.common import COUNT, NON_NEGATIVE, add_env, adopt_env, config_problem, read_config
from fireact.data.training_formats import FORMATS, write_training_set
from fireact.errors import FireactError

# flag -> TrajectoryDataModule argument; a flag left unset keeps the config's value (or the default)
DATA_FLAGS = {
    "sources": "sources",
    "mix": "mix",
    "mix_total": "mix_total",
    "val_size": "val_size",
    "seed": "seed",
    "cutoff": "cutoff",
    "truncation": "truncation",
    "tokenizer": "tokenizer",
    "protocol": "protocol",
    "only_successful": "only_successful",
    "data_dir": "data_dir",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=FORMATS, help="openai | alpaca | hf")
    p.add_argument("--out", required=True, type=Path, help="output file (openai, alpaca) or folder (hf)")
    p.add_argument("--val-out", type=Path, help="also write the held-out validation split here (same format)")
    p.add_argument("--config", type=Path, help="a training config whose data: block gives the defaults")
    p.add_argument("--sources", nargs="+", help="trajectory JSONL / FireAct release files / exported datasets folders")
    p.add_argument("--mix", type=json.loads, help="JSON cell -> count or fraction, e.g. '{\"hotpotqa/react\": 500}'")
    p.add_argument("--mix-total", type=COUNT, help="the total that mix fractions refer to")
    p.add_argument("--val-size", type=_number, help="held-out questions: a count (int) or a fraction (float)")
    p.add_argument("--seed", type=NON_NEGATIVE, help="drives the held-out split, the mix sampling and the order")
    p.add_argument(
        "--cutoff", type=COUNT, help="max tokens per example (with --truncation drop, longer ones are left out)"
    )
    p.add_argument("--truncation", choices=("truncate", "drop"))
    p.add_argument(
        "--protocol", choices=("react", "tool-calls"),
        help="openai: FireAct's text steps (react) or the tools API's tool_calls and tool messages (tool-calls)",
    )  # fmt: skip
    p.add_argument("--tokenizer", help="the tokenizer the cutoff is counted in (default smollm2-135m)")
    p.add_argument("--only-successful", action="store_true", default=None, help="keep only rewarded trajectories")
    p.add_argument("--data-dir", help="FireAct data dir (default: $FIREACT_DATA_DIR, then the user cache)")
    p.add_argument("--push-to-hub", metavar="REPO_ID", help="with --format hf: upload the folder as a dataset repo")
    add_env(p)
    p.add_argument("--private", action="store_true", help="create the Hub repo private")


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def config_data_args(path: Path) -> dict[str, Any]:
    """The `data:` block of a training config (plain or class_path/init_args form)."""

    data = read_config(path).get("data")
    if not isinstance(data, dict):
        raise FireactError(f"--config {path}: no data: block")
    data = data.get("init_args", data) if "class_path" in data else data
    if not isinstance(data, dict):
        raise FireactError(f"--config {path}: data.init_args must be a mapping")
    return data


def datamodule_args(args: argparse.Namespace) -> dict[str, Any]:
    import inspect

    from fireact.modules.datamodule import TrajectoryDataModule  # lazy: torch/Lightning, not for --help

    kwargs = config_data_args(args.config) if args.config else {}
    kwargs.update({dest: getattr(args, flag) for flag, dest in DATA_FLAGS.items() if getattr(args, flag) is not None})
    kwargs.pop("run_dir", None)
    known = set(inspect.signature(TrajectoryDataModule).parameters)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise FireactError(
            f"--config {args.config}: data key(s) {', '.join(unknown)} are not TrajectoryDataModule arguments"
        )
    check_types(kwargs, f"--config {args.config}: " if args.config else "")
    return kwargs


def check_types(kwargs: dict[str, Any], where: str = "") -> None:
    """The arguments' types, checked as the training CLI checks them (`cutoff: many` is named here,
    not failed on deep in setup)."""
    from jsonargparse import ArgumentParser

    from fireact.modules.datamodule import TrajectoryDataModule  # lazy: torch/Lightning, not for --help

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(TrajectoryDataModule, "data")
    try:
        parser.parse_object({"data": kwargs})
    except Exception as e:  # noqa: BLE001  (jsonargparse's ArgumentError, its message names the key)
        raise FireactError(where + config_problem(str(e))) from None


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from fireact.modules.datamodule import TrajectoryDataModule  # lazy: torch/Lightning, not for --help

    if args.push_to_hub and args.format != "hf":
        raise FireactError("--push-to-hub uploads a datasets folder: use it with --format hf")
    if args.config is None and args.sources is None:
        raise FireactError("give --sources (or --config with a data: block)")
    dm = TrajectoryDataModule(**datamodule_args(args))
    if dm.prompt_style.speaks.chat_only and args.format == "alpaca":
        raise FireactError(f"--protocol {dm.protocol} writes chat messages: use it with --format openai or hf")
    if args.format == "openai" and not dm.mask_observations:
        raise FireactError(
            f"--config {args.config}: mask_observations: false cannot be exported as OpenAI chat data "
            "(a hosted fine-tune trains the assistant messages only); use --format alpaca or hf"
        )
    dm.setup("fit")
    order = np.random.default_rng(dm.seed).permutation(len(dm.train_indices))
    train = adopt_env([dm.trajectories[dm.train_indices[i]] for i in order], args)
    write_training_set(train, args.out, args.format, dm.protocol)
    written = {"train": {"path": str(args.out), "examples": len(train)}}
    if args.val_out is not None:
        val = adopt_env([dm.trajectories[i] for i in dm.val_indices], args)
        write_training_set(val, args.val_out, args.format, dm.protocol)
        written["validation"] = {"path": str(args.val_out), "examples": len(val)}
    card = provenance_path(args.out, args.format)
    card.write_text(json.dumps({**dm.provenance, "export": {"format": args.format, **written}}, indent=2) + "\n")
    console = Console(stderr=True)
    for split, w in written.items():
        console.print(f"wrote {w['examples']} {split} examples ({args.format}) to {w['path']}")
    console.print(f"provenance card: {card}")
    if args.push_to_hub:
        from fireact.modules.export import push  # lazy: torch/Lightning, not for --help

        console.print(f"pushed to {push(args.out, args.push_to_hub, args.private, repo_type='dataset')}")
    return 0


def provenance_path(out: Path, fmt: str) -> Path:
    from fireact.modules.datamodule import PROVENANCE_FILE  # lazy: torch/Lightning, not for --help

    return out / PROVENANCE_FILE if fmt == "hf" else out.with_name(out.name + ".provenance.json")
