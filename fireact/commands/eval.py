"""Evaluate a model as an agent: run episodes on a task split, write trajectories, print EM/F1."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fireact.commands.agent_args import add_agent, add_lm, agent_run, prompt_inputs
from fireact.commands.common import add_data_dir
from fireact.commands.score import print_summary
from fireact.data.evaluation import summarize
from fireact.data.trajectory import write_trajectories
from fireact.errors import FireactError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lm(p, default="hf:smollm2-135m")
    add_agent(p)
    p.add_argument("--out", type=Path, required=True, help="trajectory JSONL to write (all tasks)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object per task")
    add_data_dir(p)


def run(args: argparse.Namespace) -> int:
    from fireact.rollout.runners import run_rollouts  # lazy: torch/Lightning, not for --help

    root, cfg, examples, tool, lm = agent_run(args)
    pool, prompt_text = prompt_inputs(args, cfg, root)
    start = time.monotonic()
    written = run_rollouts(lm, tool, examples, cfg, pool, prompt_text, progress="rich", source=f"eval:{lm.name}")
    per_q = (time.monotonic() - start) / len(examples) if examples else 0.0
    write_trajectories(args.out, written)
    for name in cfg.task_names(root):
        trajs = [t for t in written if t.task == name]
        summary = summarize(trajs, sum(e.task == name for e in examples))
        fmt = trajs[0].meta["fmt"] if trajs else cfg.format
        protocol = trajs[0].meta.get("protocol", "react") if trajs else cfg.protocol
        if args.json:
            row = {"file": str(args.out), "task": name, "format": fmt, "protocol": protocol, **summary.to_dict()}
            print(json.dumps({**row, "seconds_per_question": per_q}))
        else:
            where = name if cfg.env else f"{name}/{cfg.split}"
            title = f"{lm.name} on {where} ({cfg.method}, {fmt} format, {protocol}) -> {args.out}"
            print_summary(title, summary, False)
            print(f"{per_q:.2f} s per question")
    failed = [t for t in written if t.end_reason == "error"]
    if failed:  # the scores above count them as wrong: not a measurement to use silently
        raise FireactError(
            f"{len(failed)} of {len(written)} episodes ended on a backend or tool error "
            f"({failed[-1].meta.get('error', 'no detail')}), scored as wrong above; all are in {args.out}: "
            "run again once the backend answers"
        )
    return 0
