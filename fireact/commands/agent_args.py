"""Arguments shared by the agent commands (generate, eval, serve): the LM backend and the rollouts."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from fireact.agent.prompts import default_exemplar_pool
from fireact.commands.common import COUNT, NON_NEGATIVE, POSITIVE
from fireact.data.fireact_format import read_any
from fireact.data.paths import read_text, resolve_data_dir
from fireact.data.tasks import Example
from fireact.data.trajectory import Trajectory
from fireact.lm.base import LM
from fireact.rollout.config import RolloutConfig
from fireact.tools.base import SearchTool


def add_lm(p: argparse.ArgumentParser, default: str | None = None) -> None:
    g = p.add_argument_group("LM backend")
    g.add_argument(
        "--lm",
        default=default,
        required=default is None,
        help="openai:MODEL or hf:PATH_OR_NAME (hf:smollm2-135m is the offline default)",
    )
    g.add_argument("--base-url", help="OpenAI-compatible server URL (default: $OPENAI_BASE_URL, else OpenAI)")
    g.add_argument("--adapter", help="hf: a peft adapter folder to load on top of the model")
    g.add_argument("--requests-per-minute", type=POSITIVE, help="openai: request rate limit")
    g.add_argument(
        "--max-retries", type=NON_NEGATIVE, default=5, help="openai: retries with backoff on 429/5xx/timeouts"
    )
    g.add_argument("--timeout", type=POSITIVE, default=60.0, help="openai: seconds per request")
    g.add_argument("--threads", type=COUNT, default=1, help="hf: torch CPU threads (1 is fastest on a busy small CPU)")


def build_lm(args: argparse.Namespace):
    from fireact.lm.factory import make_lm  # lazy: torch/Lightning, not for --help

    batch = getattr(args, "batch_size", None)
    return make_lm(
        args.lm,
        base_url=args.base_url,
        adapter=args.adapter,
        concurrency=batch,
        batch_size=batch,
        requests_per_minute=args.requests_per_minute,
        max_retries=args.max_retries,
        timeout=args.timeout,
        threads=args.threads,
    )


def add_agent(p: argparse.ArgumentParser, **defaults) -> None:
    """The RolloutConfig options, plus the files few-shot prompting reads."""
    RolloutConfig.add_arguments(p, **defaults)
    g = p.add_argument_group("few-shot prompting")
    g.add_argument(
        "--few-shot-from",
        type=Path,
        help="exemplar pool (trajectory JSONL or FireAct file; default: the release's GPT-4 trajectories)",
    )
    g.add_argument(
        "--prompt-file", type=Path, help="a text prompt (instruction + examples) to put before each question"
    )


def prompt_inputs(args: argparse.Namespace, cfg: RolloutConfig, data_dir: Path):
    """(exemplar pool of every task, prompt text) for run_rollouts: None, None when zero-shot. A
    --few-shot-from record without a task serves every task."""
    prompt_text = None
    if args.prompt_file is not None:
        prompt_text = read_text(args.prompt_file, "prompt file")
    pool: list[Trajectory] | None = None
    env = cfg.environment(data_dir)
    if cfg.few_shot > 0 and prompt_text is None:
        if env is not None and args.few_shot_from is None:
            pool = env.exemplars()
        elif args.few_shot_from is not None:
            records = read_any(args.few_shot_from)
            pool = [
                r if r.task else replace(r, task=task)
                for task in cfg.task_names(data_dir)
                for r in records
                if r.task in ("", task)
            ]
        else:
            pool = [t for task in cfg.tasks for t in default_exemplar_pool(data_dir, task) if t.task == task]
    return pool, prompt_text


def agent_run(args: argparse.Namespace) -> tuple[Path, RolloutConfig, list[Example], SearchTool, LM]:
    """(data dir, rollout config, the questions of every task, tool, LM) of an eval or generate command;
    the questions are selected first, so a task or split typo fails before the model loads."""
    root = resolve_data_dir(args.data_dir, must_exist=args.env is None)  # a user's environment needs no FireAct data
    cfg = RolloutConfig.from_args(args)
    selected = cfg.all_examples(root)
    tool = cfg.make_tool(root)
    return root, cfg, selected, tool, build_lm(args)
