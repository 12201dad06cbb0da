"""Benchmark: render + tokenize + mask the 2,063 multitask_multimethod trajectories, and padding waste.

The target (issue 4) is under 5 s for all 2,063 with the default SmolLM2 tokenizer on a 2-core CPU.
The final line is `data_pipeline: ratio=<fireact seconds / target seconds> ...`: below 1 meets the
target. With --quick, 500 trajectories against a target scaled to 5 s * 500 / 2063.
For reference it also times tokenizing each piece of a conversation separately (the approach that
lets token boundaries drift), and reports padding waste (pad tokens / all tokens) of length-grouped
and packed batches against random batches padded to the longest.

    python bench/data_pipeline.py [--quick] [--data-dir DIR] [--format chat|alpaca]
"""

from __future__ import annotations

import argparse
import os
import time

TARGET_SECONDS = 5.0
FULL = 2063


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="500 trajectories, one repeat")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--format", choices=["chat", "alpaca"], default="chat")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--cutoff", type=int, default=512)
    args = p.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

    from fireact.data.batching import length_grouped_batches, packed_batches, padding_fraction, random_batches
    from fireact.data.encoding import encode
    from fireact.data.fireact_format import read_any
    from fireact.data.paths import resolve_data_dir
    from fireact.data.prompt_style import PromptStyle, training_turns
    from fireact.data.protocols import PROTOCOLS
    from fireact.lm.models import load_tokenizer

    root = resolve_data_dir(args.data_dir)
    trajs = [t for t in read_any(root / "finetune" / "gpt_format" / "multitask_multimethod.jsonl") if t.turns]
    n = 500 if args.quick else len(trajs)
    trajs = trajs[:n]
    target = TARGET_SECONDS * n / FULL
    repeats = 1 if args.quick else 3
    tok = load_tokenizer("smollm2-135m")
    style = PromptStyle(args.format)
    encode(trajs[:8], tok, style)  # warm the template cache

    seconds, encoded = best_of(lambda: encode(trajs, tok, style, cutoff=args.cutoff), repeats)
    n_tokens = sum(len(e.input_ids) for e in encoded)
    n_trained = sum(int(e.trained.sum()) for e in encoded)
    n_truncated = sum(e.truncated for e in encoded)
    print(f"trajectories: {n} ({args.format}), tokens after cutoff {args.cutoff}: {n_tokens}, trained: {n_trained}")
    print(f"truncated at the cutoff: {n_truncated}")
    print(
        f"fireact render+tokenize once+mask (the DataModule's and mask-audit's one encode path): {seconds:.3f} s "
        f"({n / seconds:.0f} trajectories/s; best of {repeats})"
    )

    def piecewise():
        """Reference: tokenize every message on its own (what FireAct's reference code did)."""
        out = []
        for t in trajs:
            ids = []
            for m in PROTOCOLS["react"].conversation(t.question, training_turns(t)):
                ids += tok(m["content"], add_special_tokens=False)["input_ids"]
            out.append(ids)
        return out

    ref_seconds, _ = best_of(piecewise, 1)
    print(f"reference, each piece tokenized separately: {ref_seconds:.3f} s ({ref_seconds / seconds:.2f}x fireact)")

    lengths = [len(e.input_ids) for e in encoded]
    bs = args.batch_size
    waste = {
        "random, padded to longest": padding_fraction(lengths, random_batches(n, bs, seed=0)),
        "length-grouped": padding_fraction(lengths, length_grouped_batches(lengths, bs, seed=0)),
        "packed rows": padding_fraction(lengths, packed_batches(lengths, bs, args.cutoff, seed=0)),
    }
    for name, frac in waste.items():
        print(f"padding waste (pad/all tokens), batch {bs}, {name}: {frac:.1%}")
    print(
        f"data_pipeline: ratio={seconds / target:.3f} fireact seconds / {target:.2f} s target for {n} trajectories "
        f"(<1 meets it); padding {waste['length-grouped']:.1%} grouped vs {waste['random, padded to longest']:.1%} random"
    )


if __name__ == "__main__":
    main()
