"""Serve a local model on OpenAI-compatible /v1/chat/completions and /v1/completions endpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from fireact.commands.agent_args import add_lm, build_lm
from fireact.commands.common import COUNT, NON_NEGATIVE, PORT
from fireact.errors import FireactError
from fireact.serve.http_app import add_server_security, check_bind, resolve_api_key, serve_until_stopped


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_lm(p, default="hf:smollm2-135m")
    add_server_security(p)
    p.add_argument("--port", type=PORT, default=8000)
    p.add_argument("--model-name", help="the model id clients send and see (default: the --lm spec)")
    p.add_argument(
        "--format", choices=("chat", "alpaca"), help="prompt format (default: the one saved with the model, else chat)"
    )
    p.add_argument(
        "--protocol", choices=("react", "tool-calls"),
        help="how the model calls tools (default: the one saved with it): a tool-calls model is offered the tools "
        "it was trained with (search, finish) when a request names none",
    )  # fmt: skip
    p.add_argument("--slots", type=COUNT, default=16, help="requests decoded together")
    p.add_argument("--max-queue", type=NON_NEGATIVE, default=64, help="requests waiting for a slot; beyond, HTTP 503")
    p.add_argument("--max-tokens-limit", type=COUNT, default=2048, help="the largest max_tokens a request may ask")
    p.add_argument(
        "--allow-adapter-loading", metavar="DIR",
        help="let clients load LoRA adapters from folders under DIR at runtime (vLLM's /v1/load_lora_adapter; "
        "on-policy training with rollout servers pushes its weights this way); off by default",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from fireact.rollout.runners import resolve_style  # lazy: torch/Lightning, not for --help
    from fireact.serve.server import make_server  # lazy: torch/Lightning, not for --help

    if not args.lm.startswith("hf:"):
        raise FireactError("fireact serve needs a local model: --lm hf:PATH_OR_NAME")
    api_key = resolve_api_key(args.api_key)
    if args.allow_adapter_loading and not Path(args.allow_adapter_loading).is_dir():
        raise FireactError(f"--allow-adapter-loading {args.allow_adapter_loading}: no such folder")
    check_bind(args.host, api_key, args.allow_unauthenticated)  # before the model loads
    lm = build_lm(args)
    style = resolve_style(args.format, lm, args.protocol)
    try:
        server = make_server(
            lm, args.host, args.port, api_key, model_name=args.model_name, style=style, slots=args.slots,
            max_queue=args.max_queue, max_tokens_limit=args.max_tokens_limit, adapter_dir=args.allow_adapter_loading,
        )  # fmt: skip
    except OSError as e:
        raise FireactError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    serve_until_stopped(server, f"{lm.name} ({style.format} format)", "/v1")
    return 0
