"""Benchmark: agent rollout throughput, fireact's engine against FireAct's one-at-a-time inference path.

Reference: one prompt at a time, the whole prompt re-encoded at every turn, HF `generate`, greedy
(HFLM(batch_size=1, prefix_cache=False, continuous=False)). fireact: `run_rollouts` on the default
HFLM, i.e. the continuous-batching engine (fireact/agent/engine.py), with its greedy draft-and-verify
steps and without them (`draft_tokens=0`), to show that lever on its own. Same model, same HotpotQA dev
questions (the paper's selection), same snapshot search tool, same few-shot ReAct prompt, same max
turns, greedy, fp32. Prints questions/minute for both, the ratio, EM, and how many episodes differ
(actions or final answer). Ends with `rollout_throughput: ratio=<fireact / reference> ...`.

    python bench/rollout_throughput.py [--quick] [--n 64] [--slots 16] [--threads 1] [--draft-tokens 8]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="16 questions (the default is 64)")
    p.add_argument("--n", type=int, default=None, help="dev questions (the paper's selection, seed 233)")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--few-shot", type=int, default=2)
    p.add_argument("--max-turns", type=int, default=6)
    p.add_argument("--slots", type=int, default=16, help="fireact engine: episodes decoded together")
    p.add_argument("--draft-tokens", type=int, default=8, help="fireact engine: greedy drafts per row and step")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--with-batched", action="store_true", help="also time the per-round batched generate path")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    n = args.n or (16 if args.quick else 64)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from dataclasses import replace

    import torch

    from fireact.agent.prompts import default_exemplar_pool
    from fireact.data.paths import resolve_data_dir, snapshot_path
    from fireact.data.tasks import get_task, select
    from fireact.lm.hf import HFLM
    from fireact.rollout.config import RolloutConfig
    from fireact.rollout.runners import run_rollouts
    from fireact.tools.snapshot import SnapshotSearch

    torch.set_num_threads(args.threads)
    dtype = torch.float32 if args.dtype == "fp32" else torch.bfloat16
    root = resolve_data_dir(args.data_dir)
    task = get_task("hotpotqa")
    examples = select(task.load(root, "dev"), n)
    tool = SnapshotSearch(snapshot_path(root))
    pool = default_exemplar_pool(root, task.name)
    cfg = RolloutConfig(few_shot=args.few_shot, max_turns=args.max_turns)
    print(
        f"model {args.model} {args.dtype}, {n} HotpotQA dev questions, {args.few_shot}-shot ReAct, "
        f"max {args.max_turns} turns, greedy, snapshot search, {torch.get_num_threads()} thread(s)"
    )

    def timed(lm, batch_size):
        start = time.perf_counter()
        trajs = run_rollouts(lm, tool, examples, replace(cfg, batch_size=batch_size), pool, progress="rich")
        return trajs, time.perf_counter() - start

    from fireact.rollout import engine

    batchers = []  # to read the draft counts of each engine run
    init = engine.ContinuousBatcher.__init__
    engine.ContinuousBatcher.__init__ = lambda self, *a, **k: (init(self, *a, **k), batchers.append(self))[0]
    runs = {}
    fast_lm = HFLM(args.model, dtype=dtype, batch_size=args.slots, draft_tokens=args.draft_tokens)
    runs["fireact engine"] = timed(fast_lm, args.slots)
    drafts = batchers[-1].drafts
    fast_lm.draft_tokens = 0
    runs["engine without drafts"] = timed(fast_lm, args.slots)
    if args.with_batched:
        batched = HFLM(args.model, dtype=dtype, batch_size=args.slots, continuous=False)
        runs["per-round batched generate"] = timed(batched, args.slots)
    ref_lm = HFLM(args.model, dtype=dtype, batch_size=1, prefix_cache=False, continuous=False)
    runs["reference"] = timed(ref_lm, 1)

    ref_trajs, ref_s = runs["reference"]
    for name, (trajs, s) in runs.items():
        em = sum(t.em for t in trajs) / n
        turns = sum(len(t.turns) for t in trajs) / n
        print(
            f"{name:28s} {s:7.1f} s  {60 * n / s:6.2f} questions/min  EM {em:.3f}  turns/episode {turns:.2f}"
            + ("" if name == "reference" else f"  {ref_s / s:.2f}x reference")
        )
    fast_trajs, fast_s = runs["fireact engine"]
    print(
        f"drafts: {drafts['accepted']}/{drafts['proposed']} draft tokens kept; the drafts make the engine "
        f"{runs['engine without drafts'][1] / fast_s:.2f}x faster"
    )
    answers_differ = sum(a.prediction != b.prediction for a, b in zip(fast_trajs, ref_trajs))
    episodes_differ = sum(
        [t.action for t in a.turns] != [t.action for t in b.turns] or a.prediction != b.prediction
        for a, b in zip(fast_trajs, ref_trajs)
    )
    print(
        f"final answers differing from the reference: {answers_differ}/{n}; episodes differing: {episodes_differ}/{n}"
    )
    print(
        f"rollout_throughput: ratio={ref_s / fast_s:.2f} questions/min, fireact engine ({args.slots} slots) over "
        f"one-at-a-time HF generate ({n} questions, {args.dtype} greedy, {answers_differ} answers differ)"
    )


if __name__ == "__main__":
    main()
