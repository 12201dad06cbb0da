"""Benchmark: the rollout engine with a slow search tool, against the same engine with an instant one.

A live SerpAPI search takes 1-3 s. Here the offline snapshot answers after a fixed sleep (`--latency`,
default 1 s per call) and is marked `blocking_io` like SerpAPI, so the engine runs it off the decode
path; `inline` is the same slow tool called inside the decode loop (what the engine did before:
every slot waits for every search). Same model, questions, few-shot prompt, greedy, fp32. Prints
seconds for each run and ends with
`tool_latency: ratio=<slow tool, off the decode path / instant tool> inline=<slow, inline / instant>`.

    python bench/tool_latency.py [--n 16] [--slots 16] [--latency 1.0] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time


class SlowSearch:
    """The snapshot behind a fixed latency: a stand-in for a live search over the network."""

    def __init__(self, tool, latency: float, blocking_io: bool):
        self.tool, self.latency, self.blocking_io = tool, latency, blocking_io
        self.name, self.calls = "slow-snapshot", 0

    def __call__(self, query: str) -> str:
        time.sleep(self.latency)
        self.calls += 1
        return self.tool(query)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=16, help="HotpotQA dev questions (the paper's selection)")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--latency", type=float, default=1.0, help="seconds per search call")
    p.add_argument("--few-shot", type=int, default=2)
    p.add_argument("--max-turns", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from fireact.agent.prompts import default_exemplar_pool
    from fireact.data.paths import resolve_data_dir, snapshot_path
    from fireact.data.tasks import get_task, select
    from fireact.lm.hf import HFLM
    from fireact.rollout.config import RolloutConfig
    from fireact.rollout.runners import run_rollouts
    from fireact.tools.snapshot import SnapshotSearch

    torch.set_num_threads(args.threads)
    root = resolve_data_dir(args.data_dir)
    task = get_task("hotpotqa")
    examples = select(task.load(root, "dev"), args.n)
    snapshot = SnapshotSearch(snapshot_path(root))
    pool = default_exemplar_pool(root, task.name)
    cfg = RolloutConfig(few_shot=args.few_shot, max_turns=args.max_turns, batch_size=args.slots)
    lm = HFLM(args.model, dtype=torch.float32, batch_size=args.slots)
    print(f"{args.n} questions, {args.slots} slots, {args.latency} s per search, {torch.get_num_threads()} thread(s)")

    runs = {}
    for name, tool in (
        ("instant tool", snapshot),
        ("slow tool, off the decode path", SlowSearch(snapshot, args.latency, blocking_io=True)),
        ("slow tool, inline", SlowSearch(snapshot, args.latency, blocking_io=False)),
    ):
        start = time.perf_counter()
        trajs = run_rollouts(lm, tool, examples, cfg, pool, progress="rich")
        runs[name] = (trajs, time.perf_counter() - start, getattr(tool, "calls", None))
    base_trajs, base_s, _ = runs["instant tool"]
    for name, (trajs, s, calls) in runs.items():
        same = sum(
            [t.action for t in a.turns] == [t.action for t in b.turns] and a.prediction == b.prediction
            for a, b in zip(trajs, base_trajs)
        )
        print(
            f"{name:32s} {s:7.1f} s  {s / base_s:5.2f}x the instant tool  "
            f"{calls if calls is not None else '-'} searches  {same}/{args.n} episodes as with the instant tool"
        )
    off, inline = runs["slow tool, off the decode path"][1], runs["slow tool, inline"][1]
    print(f"tool_latency: ratio={off / base_s:.2f} inline={inline / base_s:.2f} ({args.latency} s per search)")


if __name__ == "__main__":
    main()
