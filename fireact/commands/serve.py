"""Serve a local model on OpenAI-compatible /v1/chat/completions and /v1/completions endpoints; with
--record DIR, also record any agent program's episodes under /episodes/ID/v1 for training (in front of
the local model, or of another server with --upstream)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fireact.commands.agent_args import add_lm, build_lm
from fireact.commands.common import COUNT, NON_NEGATIVE, PORT, POSITIVE
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
    g = p.add_argument_group("recording gateway")
    g.add_argument(
        "--record", metavar="DIR",
        help="record every chat call under /episodes/ID/v1 as that episode's, closed by POST /episodes/ID/reward; "
        "episodes are appended to DIR/episodes.jsonl (a training source)",
    )  # fmt: skip
    g.add_argument(
        "--upstream", metavar="URL",
        help="answer chat calls by another OpenAI-compatible server (OpenAI, vLLM, fireact serve) instead of a local "
        "model: a teacher, recorded as text and calls (its key: $FIREACT_UPSTREAM_API_KEY, else $OPENAI_API_KEY)",
    )  # fmt: skip
    g.add_argument("--upstream-model", help="the model asked upstream (default: the one each request names)")
    g.add_argument("--episode-timeout", type=POSITIVE, default=600.0,
                   help="seconds without a call after which an open episode is written as unscored")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from fireact.gateway.recorder import Recorder  # lazy: torch/Lightning, not for --help
    from fireact.gateway.routes import make_gateway  # lazy: torch/Lightning, not for --help
    from fireact.gateway.upstream import UpstreamChat  # lazy: torch/Lightning, not for --help
    from fireact.serve.server import model_server  # lazy: torch/Lightning, not for --help

    api_key = resolve_api_key(args.api_key)
    if args.upstream and not args.record:
        raise FireactError("--upstream serves a recording gateway: give --record DIR too")
    if not args.upstream and not args.lm.startswith("hf:"):
        raise FireactError("fireact serve needs a local model (--lm hf:PATH_OR_NAME) or --upstream URL")
    if args.allow_adapter_loading and not Path(args.allow_adapter_loading).is_dir():
        raise FireactError(f"--allow-adapter-loading {args.allow_adapter_loading}: no such folder")
    check_bind(args.host, api_key, args.allow_unauthenticated)  # before the model loads
    name = args.upstream_model or args.model_name or args.lm
    recorder = Recorder(args.record, name, args.episode_timeout) if args.record else None
    chat = UpstreamChat(args.upstream, args.upstream_model) if args.upstream else local_model(args)
    try:
        if recorder is not None:
            server = make_gateway(chat, recorder, args.host, args.port, api_key, args.max_tokens_limit)
        else:
            server = model_server(chat, args.host, args.port, api_key)
    except OSError as e:
        raise FireactError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    what = f"{args.upstream} (upstream)" if args.upstream else f"{chat.name} ({chat.style.format} format)"
    if recorder is not None:
        what += f", recording /episodes/ID/v1 to {recorder.path}"
    serve_until_stopped(server, what, "/v1")
    return 0


def local_model(args: argparse.Namespace) -> Any:
    from fireact.rollout.runners import resolve_style  # lazy: torch/Lightning, not for --help
    from fireact.serve.server import served_model  # lazy: torch/Lightning, not for --help

    lm = build_lm(args)
    style = resolve_style(args.format, lm, args.protocol)
    return served_model(lm, args.model_name, style, args.slots, args.max_queue, args.max_tokens_limit,
                        adapter_dir=args.allow_adapter_loading)  # fmt: skip
