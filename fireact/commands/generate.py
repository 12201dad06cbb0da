"""Generate teacher trajectories (resumable: finished episodes are appended and skipped on restart)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fireact.commands.agent_args import add_agent, add_lm, agent_options, build_lm, build_tool
from fireact.commands.common import add_data_dir, add_selection, data_dir
from fireact.data.errors import FireactError
from fireact.data.tasks import get_task, select
from fireact.data.trajectory import Trajectory, TrajectoryAppender, iter_trajectories


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lm(p)
    add_agent(p)
    add_selection(p, split="train")
    p.add_argument("--out", type=Path, required=True, help="trajectory JSONL; appended to, resumed on restart")
    p.add_argument("--only-successful", action="store_true", help="keep reward-1 trajectories only (FireAct's filter)")
    p.add_argument("--max-cost-usd", type=float, help="start no new episode once this much has been spent")
    add_data_dir(p)


def attempted_path(out: Path) -> Path:
    """Ids of every finished episode, kept or not, so a resumed --only-successful run skips them too."""
    return out.with_name(out.name + ".attempted")


def _done_ids(out: Path, task: str) -> set[str]:
    ids: set[str] = set()
    if out.is_file():
        ids |= {t.id for t in iter_trajectories(out) if t.task == task}
    side = attempted_path(out)
    if side.is_file():
        for line in side.read_text(encoding="utf-8").splitlines():
            name, _, qid = line.partition("\t")
            if name == task and qid:
                ids.add(qid)
    return ids


def run(args: argparse.Namespace) -> int:
    from fireact.agent.rollout import run_rollouts, summary_row

    root = data_dir(args)
    task = get_task(args.task)
    examples = select(task.load(root, args.split), args.n, args.seed, args.offset)
    if any(e.answer is None for e in examples):
        raise FireactError(f"{task.name}/{args.split} has no gold answers: generation needs them to score episodes")
    opts = agent_options(args, root)
    tool = build_tool(args, root)
    appender = TrajectoryAppender(args.out)  # first: drops a line torn by a kill before reading ids
    done = _done_ids(args.out, task.name)
    todo = [e for e in examples if e.id not in done]
    console = Console(stderr=True)
    if done:
        console.print(f"resuming {args.out}: {len(examples) - len(todo)} of {len(examples)} already done")
    lm = build_lm(args)
    finished: list[Trajectory] = []
    spent = 0.0
    side = attempted_path(args.out).open("a", encoding="utf-8")

    def on_done(t: Trajectory) -> None:
        nonlocal spent
        spent += t.meta.get("cost_usd", 0.0)
        finished.append(t)
        if t.reward >= 1.0 or not args.only_successful:
            appender.append(t)
        side.write(f"{task.name}\t{t.id}\n")
        side.flush()
        os.fsync(side.fileno())

    def over_budget() -> bool:
        return args.max_cost_usd is not None and spent >= args.max_cost_usd

    start = time.monotonic()
    try:
        run_rollouts(
            lm,
            tool,
            task,
            todo,
            progress="rich",
            on_done=on_done,
            should_stop=over_budget,
            source=f"generate:{lm.name}",
            **opts,
        )
    finally:
        appender.close()
        side.close()
    row = summary_row(finished, time.monotonic() - start)
    kept = sum(1 for t in finished if t.reward >= 1.0 or not args.only_successful)
    table = Table(title=f"{lm.name} {args.method} on {task.name}/{args.split} -> {args.out}")
    for col in ("episodes", "kept", "success", "turns mean", "prompt tok", "completion tok", "cost $", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(
        str(row["n"]),
        str(kept),
        f"{100 * row['success_rate']:.1f}%",
        f"{row['turns_mean']:.1f}",
        str(row["prompt_tokens"]),
        str(row["completion_tokens"]),
        f"{row['cost_usd']:.4f}",
        f"{row['seconds']:.1f}",
    )
    Console().print(table)
    if over_budget():
        console.print(f"stopped early: spent ${spent:.4f} >= --max-cost-usd {args.max_cost_usd}")
    return 0
