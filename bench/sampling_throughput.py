"""Benchmark: sampling G episodes per question, the rollout engine vs HF `generate(num_return_sequences=G)`.

On-policy training (GRPO, expert iteration) samples G answers per question. fireact's engine gives each
sample its own slot (the prompt prefilled once and its KV copied), refills slots at token level and
stops each sample at its own end. The reference is what a HF user writes: one batched
`model.generate(prompts, do_sample=True, num_return_sequences=G)` per round of agent steps, each
batch running until its longest sample stops. Both sample the first agent step of the same
questions (2-shot ReAct prompts, temperature 1.0, stop at the end of the Action line) and report
sampled tokens/s; the final line is `sampling: ratio=<engine / reference tokens per second>`.

    python bench/sampling_throughput.py [--quick] [--n 8] [--g 8] [--threads 2] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4 questions")
    p.add_argument("--n", type=int, default=8, help="questions")
    p.add_argument("--g", type=int, default=8, help="samples per question")
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    n = 4 if args.quick else args.n

    import torch
    from transformers import StoppingCriteriaList

    from fireact.agent.methods import method_spec
    from fireact.agent.prompts import default_exemplar_pool, few_shot_prefix, pick_exemplars
    from fireact.data.paths import resolve_data_dir, snapshot_path
    from fireact.data.prompt_style import PromptStyle, prompt_ids
    from fireact.data.tasks import get_task, select
    from fireact.lm.base import step_complete
    from fireact.lm.hf import HFLM, _StopCriteria
    from fireact.rollout.config import RolloutConfig
    from fireact.rollout.runners import run_rollouts
    from fireact.tools.snapshot import SnapshotSearch

    torch.set_num_threads(args.threads)
    root = resolve_data_dir(args.data_dir)
    task = get_task("hotpotqa")
    examples = select(task.load(root, "dev"), n)
    pool = default_exemplar_pool(root, task.name)
    lm = HFLM("smollm2-135m", dtype=torch.float32, batch_size=n * args.g)
    cfg = RolloutConfig(
        few_shot=2, max_turns=1, max_tokens=args.max_tokens, temperature=1.0, samples=args.g,
        sampling_seed=0, batch_size=min(32, n * args.g),
    )  # fmt: skip
    tool = SnapshotSearch(snapshot_path(root))
    print(
        f"SmolLM2-135M fp32, {n} HotpotQA dev questions x G={args.g}, 2-shot ReAct first step, {args.threads} threads"
    )

    start = time.perf_counter()
    trajs = run_rollouts(lm, tool, examples, cfg, pool)
    engine_s = time.perf_counter() - start
    engine_tokens = sum(t.meta["completion_tokens"] for t in trajs)

    shots = pick_exemplars(pool, task.name, 2, 0, {e.question for e in examples}, "react")
    prefix = few_shot_prefix("react", shots, fmt="chat")
    spec = method_spec("react", args.max_tokens)
    torch.manual_seed(0)
    outs, start = [], time.perf_counter()
    for e in examples:  # one generate per question, G return sequences, as a HF user samples a group
        ids = torch.tensor([prompt_ids(PromptStyle().prompt(e.question, [], prefix), lm.tokenizer)])
        stop = _StopCriteria(lm.tokenizer, ids.shape[1], spec.stop, spec.stop_after_action, args.g)
        with torch.no_grad():
            out = lm.model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0, top_p=None, top_k=None,
                num_return_sequences=args.g, max_new_tokens=args.max_tokens, pad_token_id=lm.pad_id,
                eos_token_id=lm.eos_ids, stopping_criteria=StoppingCriteriaList([stop]),
            )  # fmt: skip
        outs += out[:, ids.shape[1] :].tolist()
    ref_s = time.perf_counter() - start
    eos = set(lm.eos_ids if isinstance(lm.eos_ids, list) else [lm.eos_ids])
    ref_tokens = 0
    for row in outs:  # a sample's own tokens: up to its stop, as the engine counts them (not the padding)
        k = 0
        for k in range(1, len(row) + 1):
            text = lm.tokenizer.decode(row[:k], skip_special_tokens=True)
            if row[k - 1] in eos or step_complete(text, spec.stop, spec.stop_after_action):
                break
        ref_tokens += k
    e_rate, r_rate = engine_tokens / engine_s, ref_tokens / ref_s
    print(f"fireact engine: {engine_tokens} sampled tokens in {engine_s:.1f} s = {e_rate:.1f} tokens/s")
    print(f"HF generate(num_return_sequences={args.g}): {ref_tokens} tokens in {ref_s:.1f} s = {r_rate:.1f} tokens/s")
    print(f"sampling: ratio={e_rate / r_rate:.2f} engine / HF generate sampled tokens per second (target >= 3)")


if __name__ == "__main__":
    main()
