"""Benchmark: what GRPO on rollout servers depends on, measured on CPU (issue 29).

Two `fireact serve` servers (real HTTP, in this process) sample GRPO episodes with the trainer's LoRA
pushed to them (`/v1/load_lora_adapter`), as `GRPOLM(rollout_servers=...)` does each step. Measured:
- the log-prob mismatch between the servers and the trainer on the sampled tokens, for the same
  weights: fp32 servers, and one bf16 server (a GPU engine's precision) against the fp32 trainer;
  the reference is the in-process rollout engine's mismatch (what GRPO trains with today);
- its effect on the update: the LoRA gradient with truncated importance sampling (TIS) against the
  gradient that takes the server log-probs as the trainer's (cosine and relative difference);
- the cost of one adapter push (save + load on both servers) relative to sampling one step.

    python bench/rollout_servers.py [--adapter runs/quickstart/adapter] [--questions 4] [--g 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path


def serve(dtype, adapter_dir: str):
    from fireact.lm.hf import HFLM
    from fireact.serve.server import make_server

    server = make_server(HFLM("smollm2-135m", dtype=dtype), port=0, model_name="smollm2", adapter_dir=adapter_dir)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def mismatch(module, trajs) -> dict:
    """Trainer vs sampler log-probs on the sampled tokens, and the gradient with and without TIS
    (advantages +1/-1 by episode), in micro-batches of 4,096 padded tokens as GRPO computes them."""
    import torch

    from fireact.data.token_log import training_rows
    from fireact.modules.grpo_loss import clipped_policy_loss, token_budget_chunks

    rows = [r for i, t in enumerate(trajs) for r in training_rows(t.token_turns, str(i))]
    chunks = token_budget_chunks(rows, 4096)
    params = [p for p in module.model.parameters() if p.requires_grad]
    total = sum(r.num_trained for r in rows)
    gaps = []

    def grad(tis: bool) -> torch.Tensor:
        module.model.zero_grad()
        for chunk in chunks:
            part = [rows[i] for i in chunk]
            new, sampled = module.token_logprobs(part)
            if tis:
                gaps.append((new.detach() - sampled).abs())
            adv = torch.cat([torch.full((rows[i].num_trained,), 1.0 if i % 2 else -1.0) for i in chunk])
            old = new.detach() if tis else sampled  # TIS: the ratio to the trainer's own log-probs
            loss, _ = clipped_policy_loss(new, old, adv, 0.2, behaviour=sampled if tis else None, tis_cap=2.0)
            (loss.sum() / total).backward()
        return torch.cat([p.grad.flatten() for p in params]).double()

    with_tis, naive = grad(True), grad(False)
    gap = torch.cat(gaps)
    return {"tokens": total, "mean_abs": round(float(gap.mean()), 7), "max_abs": round(float(gap.max()), 6),
            "grad_cosine": round(float(torch.nn.functional.cosine_similarity(with_tis, naive, dim=0)), 6),
            "grad_rel_diff": round(float((with_tis - naive).norm() / naive.norm()), 6)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapter", help="an exported adapter to start from (default: a fresh LoRA, perturbed)")
    p.add_argument("--questions", type=int, default=4)
    p.add_argument("--g", type=int, default=4, help="samples per question")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()

    import torch

    from fireact.data.paths import resolve_data_dir
    from fireact.lm.hf import HFLM
    from fireact.lm.token_servers import TokenServersLM
    from fireact.modules.grpo import GRPOLM
    from fireact.rollout.config import RolloutConfig
    from fireact.rollout.runners import run_rollouts

    torch.set_num_threads(args.threads)
    root = resolve_data_dir(args.data_dir)
    cfg = RolloutConfig(n=args.questions, samples=args.g, temperature=1.0, max_turns=4, record_tokens=True,
                        batch_size=args.questions * args.g, sampling_seed=0)  # fmt: skip
    examples, tool = cfg.all_examples(root), cfg.make_tool(root)
    module = GRPOLM(model="smollm2-135m", init_adapter=args.adapter, lora_dropout=0.0, rollouts=cfg)
    module.configure_model()
    if args.adapter is None:  # a fresh LoRA is the base: perturb it so that the adapter matters
        torch.manual_seed(0)
        with torch.no_grad():
            for name, w in module.model.named_parameters():
                if "lora_B" in name:
                    w.normal_(0, 0.01)
    module.model.eval()
    tmp = Path(tempfile.mkdtemp(prefix="fireact-bench-"))
    print(f"SmolLM2-135M, {args.questions} HotpotQA dev questions x G={args.g}, T=1.0, {args.threads} torch threads")

    local = HFLM(module.model, module.tokenizer, prompt_style=module.prompt_style)
    started = time.perf_counter()
    here = run_rollouts(local, tool, examples, cfg)
    local_s = time.perf_counter() - started
    print(f"reference: in-process engine, {len(here)} episodes in {local_s:.1f} s; mismatch {mismatch(module, here)}")

    fp32 = [serve(torch.float32, str(tmp)) for _ in range(2)]
    servers = TokenServersLM([u for _, u in fp32], "smollm2", module.tokenizer, module.prompt_style,
                             concurrency=cfg.batch_size)  # fmt: skip
    servers.check()
    pushes = []
    for k in range(3):
        started = time.perf_counter()
        module.model.save_pretrained(str(tmp / f"step{k}"), selected_adapters=["default"])
        servers.push_adapter(f"step{k}", str(tmp / f"step{k}"), servers.model if k else None)
        pushes.append(time.perf_counter() - started)
    started = time.perf_counter()
    there = run_rollouts(servers, tool, examples, cfg)
    remote_s = time.perf_counter() - started
    push = sum(pushes) / len(pushes)
    print(f"2 fp32 servers: {len(there)} episodes in {remote_s:.1f} s (requests {servers.requests}); "
          f"mismatch {mismatch(module, there)}")  # fmt: skip
    print(
        f"adapter push (save + load on 2 servers): {push * 1000:.0f} ms; push / sampling one step = {push / remote_s:.4f}"
    )

    bf16, url = serve(torch.bfloat16, str(tmp))
    half = TokenServersLM([url], "smollm2", module.tokenizer, module.prompt_style, concurrency=cfg.batch_size)
    half.push_adapter("step2", str(tmp / "step2"))
    few = examples[: max(1, args.questions // 2)]
    started = time.perf_counter()
    low = run_rollouts(half, tool, few, cfg)
    print(
        f"1 bf16 server: {len(low)} episodes in {time.perf_counter() - started:.1f} s; mismatch {mismatch(module, low)}"
    )
    for server, _ in [*fp32, (bf16, url)]:
        server.shutdown()
        server.service.close()
    print(f"rollout_servers: ratio={push / remote_s:.4f} adapter push over one step's sampling on the servers")


if __name__ == "__main__":
    main()
