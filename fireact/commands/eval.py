"""Evaluate a model as an agent: run episodes on a task split, write trajectories, print EM/F1."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fireact.commands.agent_args import add_agent, add_lm, agent_options, build_lm, build_tool
from fireact.commands.common import add_data_dir, add_selection, data_dir
from fireact.commands.score import print_summary
from fireact.data.evaluation import summarize
from fireact.data.tasks import get_task, select
from fireact.data.trajectory import write_trajectories


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lm(p, default="hf:smollm2-135m")
    add_agent(p)
    add_selection(p, split="dev")
    p.add_argument("--out", type=Path, required=True, help="trajectory JSONL to write")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_data_dir(p)


def run(args: argparse.Namespace) -> int:
    from fireact.agent.rollout import run_rollouts

    root = data_dir(args)
    task = get_task(args.task)
    examples = select(task.load(root, args.split), args.n, args.seed, args.offset)
    opts = agent_options(args, root)
    tool = build_tool(args, root)
    lm = build_lm(args)
    start = time.monotonic()
    trajs = run_rollouts(
        lm, tool, task, examples, progress=None if args.json else "rich", source=f"eval:{lm.name}", **opts
    )
    seconds = time.monotonic() - start
    write_trajectories(args.out, trajs)
    summary = summarize(trajs, len(examples))
    per_q = seconds / len(examples) if examples else 0.0
    if args.json:
        print(json.dumps({"file": str(args.out), **summary.to_dict(), "seconds_per_question": per_q}))
    else:
        print_summary(f"{lm.name} on {task.name}/{args.split} ({args.method}) -> {args.out}", summary, False)
        print(f"{per_q:.2f} s per question")
    return 0
