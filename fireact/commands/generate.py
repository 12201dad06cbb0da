"""Generate teacher trajectories (resumable: finished episodes are appended and skipped on restart)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fireact.commands.agent_args import add_agent, add_lm, agent_run, prompt_inputs
from fireact.commands.common import USD, add_data_dir
from fireact.data.evaluation import summarize
from fireact.data.rewards import rewarded
from fireact.data.trajectory import GenerationLog, Trajectory
from fireact.errors import FireactError

FAILING_IN_A_ROW = 8  # consecutive failed episodes that stop the run: the backend or tool is down, not flaky


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lm(p)
    add_agent(p, split="train")
    p.add_argument("--out", type=Path, required=True, help="trajectory JSONL; appended to, resumed on restart")
    p.add_argument("--only-successful", action="store_true", help="keep reward-1 trajectories only (FireAct's filter)")
    p.add_argument("--max-cost-usd", type=USD, help="start no new episode once this much has been spent")
    add_data_dir(p)


def run(args: argparse.Namespace) -> int:
    """Every task's episodes in one run; the budget covers the whole run."""
    from fireact.rollout.runners import run_rollouts  # lazy: torch/Lightning, not for --help

    root, cfg, examples, tool, lm = agent_run(args)
    missing = next((e for e in examples if e.answer is None), None)
    if missing is not None:
        if cfg.env is None:
            raise FireactError(
                f"{missing.task}/{cfg.split} has no gold answers: generation needs them to score episodes"
            )
    pool, prompt_text = prompt_inputs(args, cfg, root)
    log = GenerationLog(args.out)
    done = {task: log.done_ids(task) for task in cfg.task_names(root)}
    todo = [e for e in examples if e.id not in done[e.task]]
    console = Console(stderr=True)
    if len(todo) < len(examples):
        console.print(f"resuming {args.out}: {len(examples) - len(todo)} of {len(examples)} already done")
    spent = 0.0
    finished: list[Trajectory] = []
    failed: list[Trajectory] = []  # ended by a backend or tool failure: not recorded, so a rerun retries them
    streak = 0  # episodes failed in a row

    def on_done(t: Trajectory) -> None:
        nonlocal spent, streak
        spent += t.meta.get("cost_usd", 0.0)
        if t.end_reason == "error":
            failed.append(t)
            streak += 1
            return
        streak = 0
        finished.append(t)
        log.record(t, keep=rewarded(t) or not args.only_successful)

    def over_budget() -> bool:
        return args.max_cost_usd is not None and spent >= args.max_cost_usd

    def should_stop() -> bool:  # the budget is spent, or the backend or tool is down (no point going on)
        return over_budget() or streak >= FAILING_IN_A_ROW

    start = time.monotonic()
    try:
        run_rollouts(lm, tool, todo, cfg, pool, prompt_text, progress="rich", on_done=on_done,
                     should_stop=should_stop, source=f"generate:{lm.name}")  # fmt: skip
    finally:
        log.close()
    where = cfg.env or f"{', '.join(cfg.tasks)}/{cfg.split}"
    print_generated(f"{lm.name} {cfg.method} on {where} -> {args.out}", finished,
                    args.only_successful, time.monotonic() - start)  # fmt: skip
    if over_budget():
        console.print(f"stopped early: spent ${spent:.4f} >= --max-cost-usd {args.max_cost_usd}")
    if failed:
        raise FireactError(
            f"{len(failed)} {', '.join(sorted({t.task for t in failed}))} episodes failed ({failed[-1].meta.get('error', 'backend error')}); "
            f"{len(finished)} finished ones are saved in {args.out}: run the same command again to retry the rest"
        )
    return 0


def print_generated(title: str, finished: list[Trajectory], only_successful: bool, seconds: float) -> None:
    """The run's table: episodes, kept, success, turns, tokens, cost and time."""
    summary = summarize(finished)
    kept = sum(1 for t in finished if rewarded(t) or not only_successful)
    table = Table(title=title)
    for col in ("episodes", "kept", "success", "turns mean", "prompt tok", "completion tok", "cost $", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(
        str(summary.n),
        str(kept),
        f"{100 * (summary.reward if summary.reward is not None else summary.em):.1f}%",
        f"{summary.turns_mean:.1f}",
        str(sum(t.meta.get("prompt_tokens", 0) for t in finished)),
        str(sum(t.meta.get("completion_tokens", 0) for t in finished)),
        f"{sum(t.meta.get('cost_usd', 0.0) for t in finished):.4f}",
        f"{seconds:.1f}",
    )
    Console().print(table)
