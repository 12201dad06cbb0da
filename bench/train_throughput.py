"""Benchmark: LoRA training throughput and padding, fireact's batching against HF-Trainer-style batches.

Same model (SmolLM2-135M, LoRA r=16/alpha=32 on q/k/v/o as configs/quickstart.yaml), same data
(finetune/alpaca_format/hotpotqa_multimethod.json, chat format, cutoff 512, longer dropped), AdamW,
a fixed number of optimizer steps per variant:
- reference: random batches of `--batch-size` trajectories padded to the longest (what HF Trainer's
  default collator does), the model's own loss (LM head at every position);
- fireact length-grouped (the headline): TrajectoryDataModule(packing=False), FireActLM's loss (LM
  head only at trained positions);
- fireact packed (not with --quick): TrajectoryDataModule(packing=True): rows of up to 512 tokens,
  block-diagonal 4D mask (slower here: sdpa over full 512x512 rows with a custom mask).
Steps of the variants are interleaved (one step each, in turn) so machine noise hits all alike.
Reports pad fraction, trained tokens/s, all real tokens/s, and the step's useful FLOP/s against this
CPU's measured fp32 matmul FLOP/s (bench/machine.py), counting LoRA honestly: forward 2*N per token
for all matmul weights, backward 2*N (activation gradients) for all, weight gradients only for the
LoRA weights, the LM head only where it is computed, causal attention within each example. Padding
positions are not counted (useful FLOPs). Ends with `train_throughput: ratio=<length-grouped / reference> ...`.

    python bench/train_throughput.py [--quick] [--steps 8] [--batch-size 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from fireact.data.token_row import IGNORE_INDEX


def attention_pairs(batch) -> int:
    """Causal (query, key) pairs inside each real example of the batch."""
    pairs = 0
    mask = batch["attention_mask"]
    for b, row in enumerate(batch["position_ids"].tolist()):
        real = mask[b].bool().tolist() if mask.ndim == 2 else mask[b, 0].diagonal().tolist()
        n = 0
        for p, r in zip(row, real):
            if not r:
                continue
            if p == 0 and n:
                pairs += n * (n + 1) // 2
                n = 0
            n += 1
        pairs += n * (n + 1) // 2
    return pairs


def step_flops(batch, n_body: int, n_head: int, n_lora: int, layers: int, d_attn: int, head_all: bool) -> float:
    real = int(batch["num_real_tokens"])
    head_positions = real if head_all else int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    attn = 4 * d_attn * attention_pairs(batch) * layers
    forward = 2 * (n_body + n_lora) * real + 2 * n_head * head_positions + attn
    backward_activations = 2 * (n_body + n_lora) * real + 2 * n_head * head_positions + 2 * attn
    backward_weights = 2 * n_lora * real  # frozen weights get no weight gradients
    return forward + backward_activations + backward_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 timed steps, reference vs length-grouped only")
    p.add_argument("--steps", type=int, default=None, help="timed optimizer steps per variant (after 1 warm-up)")
    p.add_argument("--batch-size", type=int, default=None, help="trajectories (packed: rows) per step")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--source", default="finetune/alpaca_format/hotpotqa_multimethod.json")
    args = p.parse_args()
    steps = args.steps or (3 if args.quick else 10)
    bs = args.batch_size or 4
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import matmul_flops

    from fireact.data.batching import padding_fraction, random_batches
    from fireact.data.paths import resolve_data_dir
    from fireact.modules.datamodule import PlannedBatches, TrajectoryDataModule
    from fireact.modules.lm_module import FireActLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    root = resolve_data_dir(args.data_dir)

    def datamodule(packing: bool) -> TrajectoryDataModule:
        dm = TrajectoryDataModule(
            sources=[args.source], data_dir=str(root), cutoff=512, truncation="drop", val_size=0,
            batch_size=bs, packing=packing, seed=233,
        )  # fmt: skip
        dm.setup("fit")
        return dm

    packed_dm = datamodule(True)
    train = packed_dm.train_set
    lengths = [len(r) for r in train.rows]
    pad_id = packed_dm.tokenizer.pad_token_id
    reference = PlannedBatches(train.rows, random_batches(len(lengths), bs, 233), pad_id, False)
    reference.padding_fraction = padding_fraction(lengths, reference.batches)
    variants = {"reference (random, padded)": (reference, True)}
    variants["fireact length-grouped"] = (datamodule(False).train_set, False)
    if not args.quick:
        variants["fireact packed"] = (train, False)

    module = FireActLM(
        model="smollm2-135m", finetune="lora", lora_r=16, lora_alpha=32, lora_dropout=0.05,
        lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )  # fmt: skip
    module.configure_model()
    module.model.train()
    config = module.model.get_base_model().config
    params = dict(module.model.named_parameters())
    n_lora = sum(v.numel() for k, v in params.items() if v.requires_grad)
    n_head = config.vocab_size * config.hidden_size
    n_embed = n_head  # tied embeddings: the embedding lookup is no matmul
    n_body = sum(v.numel() for k, v in params.items() if not v.requires_grad and v.ndim == 2) - n_embed
    d_attn = config.num_attention_heads * getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)
    opt = torch.optim.AdamW([v for v in params.values() if v.requires_grad], lr=1e-4)
    print(
        f"{len(lengths)} trajectories (cutoff 512, mean {sum(lengths) / len(lengths):.0f} tokens), batch {bs}, "
        f"{steps} timed steps per variant, {torch.get_num_threads()} thread(s); "
        f"matmul params: body {n_body / 1e6:.1f}M, head {n_head / 1e6:.1f}M, LoRA {n_lora / 1e6:.2f}M"
    )

    def one_step(ds, i: int, head_all: bool) -> tuple[float, dict]:
        batch = ds[i % len(ds)]
        module.hparams.head_on_trained_only = not head_all
        start = time.perf_counter()
        loss = module(batch)  # FireActLM adapts the mask to the attention kernel itself
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start, batch

    stats = {name: {"s": 0.0, "real": 0, "trained": 0, "all": 0, "flops": 0.0} for name in variants}
    for ds, head_all in variants.values():
        one_step(ds, 0, head_all)  # warm-up (allocator, kernels)
    for i in range(1, steps + 1):
        for name, (ds, head_all) in variants.items():
            s, batch = one_step(ds, i, head_all)
            st = stats[name]
            st["s"] += s
            st["real"] += int(batch["num_real_tokens"])
            st["trained"] += int(batch["num_trained_tokens"])
            st["all"] += batch["input_ids"].numel()
            st["flops"] += step_flops(batch, n_body, n_head, n_lora, config.num_hidden_layers, d_attn, head_all)
    peak = {"fp32": matmul_flops(torch.float32, seconds=2.0), "bf16": matmul_flops(torch.bfloat16, seconds=2.0)}
    print(f"this CPU's matmul ({torch.get_num_threads()} thread(s)): fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s (training runs in fp32)")  # fmt: skip
    rates = {}
    for name, (ds, _) in variants.items():
        st = stats[name]
        pad = 1 - st["real"] / st["all"]
        rates[name] = st["trained"] / st["s"]
        flops = st["flops"] / st["s"]
        print(
            f"{name:28s} pad {pad:6.1%} (plan {ds.padding_fraction:5.1%})  trained {rates[name]:7.1f} tok/s  "
            f"real {st['real'] / st['s']:7.1f} tok/s  {st['s'] / steps:6.2f} s/step  "
            f"{flops / 1e9:6.1f} GFLOP/s useful = {flops / peak['fp32']:.0%} of fp32 matmul"
        )
    ref = rates["reference (random, padded)"]
    for name in variants:
        if name != "reference (random, padded)":
            print(f"{name}: {rates[name] / ref:.2f}x the reference's trained tokens/s")
    best = "fireact length-grouped"
    pad = 1 - stats[best]["real"] / stats[best]["all"]
    ref_pad = 1 - stats["reference (random, padded)"]["real"] / stats["reference (random, padded)"]["all"]
    print(
        f"train_throughput: ratio={rates[best] / ref:.2f} trained tokens/s, fireact length-grouped over random "
        f"padded batches (batch {bs}, {steps} steps, pad {pad:.1%} vs {ref_pad:.1%})"
    )


if __name__ == "__main__":
    main()
