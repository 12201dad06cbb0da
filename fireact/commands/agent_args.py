"""Arguments shared by the agent commands (generate, eval, serve): LM backend, tool, method."""

from __future__ import annotations

import argparse
from pathlib import Path

from fireact.data.errors import FireactError
from fireact.data.trajectory import METHODS


def add_lm(p: argparse.ArgumentParser, default: str | None = None) -> None:
    g = p.add_argument_group("LM backend")
    g.add_argument(
        "--lm",
        default=default,
        required=default is None,
        help="openai:MODEL or hf:PATH_OR_NAME (hf:smollm2-135m is the offline default)",
    )
    g.add_argument("--base-url", help="OpenAI-compatible server URL (default: $OPENAI_BASE_URL, else OpenAI)")
    g.add_argument("--adapter", help="hf: a peft adapter folder to load on top of the model")
    g.add_argument("--concurrency", type=int, default=8, help="parallel requests (openai) / episodes per batch (hf)")
    g.add_argument("--requests-per-minute", type=float, help="openai: request rate limit")
    g.add_argument("--max-retries", type=int, default=5, help="openai: retries with backoff on 429/5xx/timeouts")
    g.add_argument("--timeout", type=float, default=60.0, help="openai: seconds per request")
    g.add_argument("--threads", type=int, default=1, help="hf: torch CPU threads (1 is fastest on a busy small CPU)")


def build_lm(args: argparse.Namespace):
    from fireact.agent.lm import make_lm

    return make_lm(
        args.lm,
        base_url=args.base_url,
        adapter=getattr(args, "adapter", None),
        concurrency=args.concurrency,
        batch_size=args.concurrency,
        requests_per_minute=args.requests_per_minute,
        max_retries=args.max_retries,
        timeout=args.timeout,
        threads=args.threads,
    )


def add_agent(p: argparse.ArgumentParser, method: str = "react") -> None:
    g = p.add_argument_group("agent")
    g.add_argument("--method", default=method, choices=METHODS)
    g.add_argument("--tool", default="snapshot", choices=("snapshot", "serpapi"))
    g.add_argument(
        "--serpapi-cache", type=Path, help="serpapi record/replay cache (default: ~/.cache/fireact/serpapi.jsonl)"
    )
    g.add_argument(
        "--search-k", type=int, default=1, help="snapshot: BM25 snippets per search (1, as one Google result)"
    )
    g.add_argument(
        "--noise", default="none", choices=("none", "nothing", "random"), help="robustness study: noisy search"
    )
    g.add_argument("--noise-p", type=float, default=0.5)
    g.add_argument("--few-shot", type=int, default=0, help="K exemplars from successful trajectories of the task")
    g.add_argument(
        "--few-shot-from",
        type=Path,
        help="exemplar pool (trajectory JSONL or FireAct file; default: the release's GPT-4 trajectories)",
    )
    g.add_argument(
        "--prompt-file", type=Path, help="a text prompt (instruction + examples) to put before each question"
    )
    g.add_argument(
        "--format",
        dest="fmt",
        default="chat",
        choices=("chat", "alpaca"),
        help="prompt format (alpaca for alpaca-trained models)",
    )
    g.add_argument("--max-turns", type=int, default=11)
    g.add_argument("--max-tokens", type=int, help="tokens per model step (default per method)")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--exemplar-seed", type=int, default=0)


def build_tool(args: argparse.Namespace, data_dir: Path):
    from fireact.agent.tools import make_tool

    return make_tool(
        args.tool, data_dir, args.noise, args.noise_p, args.exemplar_seed, args.serpapi_cache, args.search_k
    )


def agent_options(args: argparse.Namespace, data_dir: Path) -> dict:
    """run_rollouts keyword arguments from the parsed agent options."""
    from fireact.agent.prompts import default_exemplar_pool

    prompt_text = None
    if args.prompt_file is not None:
        if not args.prompt_file.is_file():
            raise FireactError(f"--prompt-file {args.prompt_file}: no such file")
        prompt_text = args.prompt_file.read_text(encoding="utf-8")
    pool = None
    if args.few_shot > 0 and prompt_text is None:
        if args.few_shot_from is not None:
            from fireact.data.fireact_format import read_any

            pool = read_any(args.few_shot_from)
            for r in pool:
                r.task = r.task or args.task
        else:
            pool = default_exemplar_pool(data_dir, args.task)
    return {
        "method": args.method,
        "few_shot": args.few_shot,
        "exemplar_pool": pool,
        "prompt_text": prompt_text,
        "fmt": args.fmt,
        "max_turns": args.max_turns,
        "batch_size": args.concurrency,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "seed": args.exemplar_seed,
    }
