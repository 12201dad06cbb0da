"""Benchmark: the recording gateway's overhead. 16 concurrent episodes (the real openai client, one
thread each) of `--turns` chat calls each, every call the conversation so far plus the model's answer
and a tool result, against SmolLM2-135M-Instruct served in this process: once on plain `/v1`
(unrecorded) and once on `/episodes/ID/v1` with `--record` (each call appended to its episode, each
episode closed and written). Greedy, so both runs decode the same tokens. Prints requests/s and
completion tokens/s of each and the ratio recorded / plain, and writes them to `--out` as JSON.

    python bench/gateway_overhead.py [--episodes 16] [--turns 3] [--max-tokens 32] [--out overhead.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look a topic up.",
          "parameters": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}}}]  # fmt: skip


def episode(base_url: str, k: int, turns: int, max_tokens: int) -> int:
    """One agent-like episode; its completion tokens."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="local", max_retries=0, timeout=600)
    messages = [{"role": "system", "content": "You answer questions; look topics up first."},
                {"role": "user", "content": f"Question {k}: who wrote book number {k}?"}]  # fmt: skip
    tokens = 0
    for t in range(turns):
        r = client.chat.completions.create(model="agent", messages=messages, tools=TOOLS, max_tokens=max_tokens,
                                           temperature=0)  # fmt: skip
        tokens += r.usage.completion_tokens
        messages += [{"role": "assistant", "content": r.choices[0].message.content or ""},
                     {"role": "user", "content": f"Observation {t}: book {k} was written in {1900 + k}."}]  # fmt: skip
    return tokens


def load(url: str, episodes: int, turns: int, max_tokens: int, recorded: bool) -> dict[str, float]:
    from fireact.gateway import episode_url, finish_episode

    def one(k: int) -> int:
        base = episode_url(url, f"bench-{k}") if recorded else f"{url}/v1"
        n = episode(base, k, turns, max_tokens)
        if recorded:
            finish_episode(base, 1.0)
        return n

    start = time.perf_counter()
    with ThreadPoolExecutor(episodes) as pool:
        tokens = sum(pool.map(one, range(episodes)))
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "requests_per_s": round(episodes * turns / seconds, 3),
            "tokens_per_s": round(tokens / seconds, 2), "completion_tokens": tokens}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    import torch

    from fireact.gateway.recorder import Recorder
    from fireact.gateway.routes import make_gateway
    from fireact.lm.hf import HFLM
    from fireact.serve.server import served_model

    torch.set_num_threads(1)
    served = served_model(HFLM(args.model, dtype=torch.float32), "agent", slots=args.episodes)
    with tempfile.TemporaryDirectory() as tmp:
        server = make_gateway(served, Recorder(tmp, "agent"), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            load(url, 2, 1, 4, False)  # warm-up
            plain = load(url, args.episodes, args.turns, args.max_tokens, recorded=False)
            recorded = load(url, args.episodes, args.turns, args.max_tokens, recorded=True)
            written = len((Path(tmp) / "episodes.jsonl").read_text().splitlines())
        finally:
            server.shutdown()
            server.server_close()
            server.close_service()
    result = {"plain": plain, "recorded": recorded, "episodes_written": written,
              "ratio_requests": round(recorded["requests_per_s"] / plain["requests_per_s"], 3),
              "ratio_tokens": round(recorded["tokens_per_s"] / plain["tokens_per_s"], 3),
              "same_tokens": plain["completion_tokens"] == recorded["completion_tokens"]}  # fmt: skip
    print(json.dumps(result))
    print(f"gateway_overhead: ratio={result['ratio_requests']} (recorded / plain requests/s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
