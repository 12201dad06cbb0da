"""This CPU's matmul FLOP/s (the machine's practical limit that training steps are compared with)."""

from __future__ import annotations

import argparse
import time

import torch


def matmul_flops(dtype: torch.dtype, n: int = 1024, seconds: float = 2.0) -> float:
    """Best of torch.mm and F.linear (the kernel models use; oneDNN handles bf16 there)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = 0.0
    for op in (torch.mm, torch.nn.functional.linear):
        for _ in range(3):
            op(a, b)  # warm-up
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 2:
            op(a, b)
            count += 1
        best = max(best, 2 * n**3 * count / elapsed)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    seconds = 1.0 if args.quick else 3.0
    fp32, bf16 = matmul_flops(torch.float32, seconds=seconds), matmul_flops(torch.bfloat16, seconds=seconds)
    print(f"threads: {torch.get_num_threads()}")
    print(f"fp32 matmul: {fp32 / 1e9:.1f} GFLOP/s")
    print(f"bf16 matmul: {bf16 / 1e9:.1f} GFLOP/s")
    print(f"machine_flops: ratio={bf16 / fp32:.2f} bf16 over fp32 matmul FLOP/s")


if __name__ == "__main__":
    main()
