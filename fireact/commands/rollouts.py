"""Run your own agent program over an environment's examples, G times each, through a recording
gateway: the teacher's runs to fine-tune on (`--upstream`), or a fine-tuned model's (`--lm`).

The program is a file with `async def run(example, base_url) -> reward` (see fireact.gateway.driver):
it keeps its own code (OpenAI Agents SDK, LangGraph, DSPy, plain openai) and only takes `base_url`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fireact.commands.agent_args import add_lm, build_lm
from fireact.commands.common import COUNT, NON_NEGATIVE, add_data_dir
from fireact.data.paths import resolve_data_dir
from fireact.data.rewards import rewarded
from fireact.data.trajectory import write_trajectories
from fireact.errors import FireactError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", required=True, help="the program: a .py file defining `async def run(example, base_url)`")
    p.add_argument("--env", required=True, help="whose examples: a built-in name, a .py file or a module")
    p.add_argument("--env-args", help="the environment's load_environment keyword arguments, a JSON object")
    p.add_argument("--n", type=NON_NEGATIVE, help="the first N examples (default: all)")
    p.add_argument("--offset", type=NON_NEGATIVE, default=0, help="skip this many examples first")
    p.add_argument("--group-size", type=COUNT, default=1, help="runs of each example (G)")
    p.add_argument("--concurrency", type=COUNT, default=8, help="episodes in flight (and decode slots)")
    p.add_argument("--record", required=True, type=Path, help="the recording directory (appended to)")
    p.add_argument("--out", type=Path, help="also write the recorded trajectories, labelled by example, as JSONL")
    add_lm(p, default="hf:smollm2-135m")
    p.add_argument("--format", choices=("chat", "alpaca"), help="hf: prompt format (default: the model's saved one)")
    p.add_argument("--protocol", choices=("react", "tool-calls"), help="hf: default: the model's saved one")
    p.add_argument(
        "--upstream", metavar="URL", help="a teacher server instead of --lm (key: $FIREACT_UPSTREAM_API_KEY)"
    )
    p.add_argument("--upstream-model", help="the model asked upstream")
    add_data_dir(p)


def run(args: argparse.Namespace) -> int:
    from fireact.gateway.driver import load_agent, run_program  # lazy: torch/Lightning, not for --help
    from fireact.rollout.config import RolloutConfig  # lazy: torch/Lightning, not for --help

    agent = load_agent(args.agent)  # a wrong program fails before any model loads
    root = resolve_data_dir(args.data_dir, must_exist=False)
    cfg = RolloutConfig(env=args.env, env_args=args.env_args, n=args.n, offset=args.offset)
    examples = cfg.all_examples(root if root.is_dir() else None)
    if not examples:
        raise FireactError(f"--env {args.env}: no examples selected")
    chat = upstream(args) if args.upstream else local(args)
    started = time.perf_counter()
    trajs, runs = run_program(chat, agent, examples, args.group_size, args.record, args.concurrency)
    seconds = time.perf_counter() - started
    if args.out:
        write_trajectories(args.out, trajs)
    scored = [r for r in runs if r.reward is not None]
    table = Table(title=f"{Path(args.agent).name} on {args.env} -> {args.record}")
    for col in ("episodes", "scored", "success", "reward mean", "failed", "trajectories", "seconds"):
        table.add_column(col, justify="right")
    success = sum(r.reward >= 1.0 for r in scored) / max(len(runs), 1)
    mean = sum(r.reward for r in scored) / max(len(scored), 1)
    table.add_row(str(len(runs)), str(len(scored)), f"{100 * success:.1f}%", f"{mean:.3f}",
                  str(sum(r.error is not None for r in runs)), f"{len(trajs)} ({sum(map(rewarded, trajs))} rewarded)",
                  f"{seconds:.1f}")  # fmt: skip
    Console().print(table)
    return 0


def upstream(args: argparse.Namespace) -> Any:
    from fireact.gateway.upstream import UpstreamChat  # lazy: torch/Lightning, not for --help

    return UpstreamChat(args.upstream, args.upstream_model)


def local(args: argparse.Namespace) -> Any:
    from fireact.rollout.runners import resolve_style  # lazy: torch/Lightning, not for --help
    from fireact.serve.server import served_model  # lazy: torch/Lightning, not for --help

    if not args.lm.startswith("hf:"):
        raise FireactError("fireact rollouts serves a local model (--lm hf:PATH_OR_NAME) or a teacher (--upstream URL)")
    lm = build_lm(args)
    return served_model(lm, style=resolve_style(args.format, lm, args.protocol), slots=args.concurrency)
