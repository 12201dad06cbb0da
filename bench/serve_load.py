"""Benchmark: `fireact serve` under load, requests sharing the engine against one request at a time.

16 client threads (the real openai client) send a fixed number of chat requests: HotpotQA dev
questions (the paper's selection) as a fine-tuned agent is asked them, zero-shot, greedy, up to
`--max-tokens` tokens. The same server runs twice in this process: with `--slots` requests decoded
together, and with one slot (one request at a time, as the server was before it used the engine:
then each request went through HF `generate` behind a lock; the one-slot engine still keeps KV
across a slot's requests, so it is, if anything, the faster reference). Prints requests/s, errors,
tokens/s and the peak RSS, and ends with `serve_load: ratio=<slots / one at a time> errors=<n>`.

    python bench/serve_load.py [--requests 48] [--clients 16] [--slots 16] [--max-tokens 48] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time


def run_load(url: str, questions: list[str], clients: int, max_tokens: int) -> tuple[float, int, int]:
    """(seconds, errors, completion tokens) for all questions sent by `clients` threads."""
    from concurrent.futures import ThreadPoolExecutor

    import openai

    client = openai.OpenAI(base_url=url, api_key="local", max_retries=0, timeout=600)

    def ask(q: str) -> int:
        r = client.chat.completions.create(
            model="agent", messages=[{"role": "user", "content": q}], max_tokens=max_tokens, temperature=0
        )
        return r.usage.completion_tokens

    errors = tokens = 0
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(ask, q) for q in questions]:
            try:
                tokens += f.result()
            except Exception:
                errors += 1
    return time.perf_counter() - start, errors, tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=48)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from fireact.data.paths import resolve_data_dir
    from fireact.data.tasks import get_task, select
    from fireact.lm.hf import HFLM
    from fireact.serve.server import make_server

    torch.set_num_threads(args.threads)
    task = get_task("hotpotqa")
    questions = [e.question for e in select(task.load(resolve_data_dir(args.data_dir), "dev"), args.requests)]
    lm = HFLM(args.model, dtype=torch.float32)
    print(f"{args.requests} requests from {args.clients} clients, max_tokens {args.max_tokens}, greedy, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    results = {}
    for name, slots in ((f"engine, {args.slots} slots", args.slots), ("one request at a time", 1)):
        server = make_server(lm, port=0, model_name="agent", slots=slots, max_queue=args.requests)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        try:
            results[name] = run_load(url, questions, args.clients, args.max_tokens)
        finally:
            server.shutdown()
            server.server_close()
            server.service.close()
        s, errors, tokens = results[name]
        print(f"{name:24s} {s:7.1f} s  {args.requests / s:6.2f} requests/s  {tokens / s:7.1f} tokens/s  "
              f"{errors} errors")  # fmt: skip
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (fast, fast_err, _), (ref, ref_err, _) = results.values()
    print(f"peak RSS {rss:.0f} MiB")
    print(
        f"serve_load: ratio={ref / fast:.2f} errors={fast_err + ref_err} ({args.clients} clients, {args.slots} slots)"
    )


if __name__ == "__main__":
    main()
