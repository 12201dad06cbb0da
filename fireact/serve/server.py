"""OpenAI-compatible `/v1/chat/completions` and `/v1/completions` endpoints for a local model
(`fireact serve`), with vLLM's surface for rollout clients: token-id prompts, the sampled token ids
and log-probs (`return_token_ids`, `logprobs`), and runtime LoRA loading (`adapters.py`).

Requests share the continuous-batching engine (`completion_service.py`): concurrent clients are
decoded together instead of queueing behind a lock. Bad requests get HTTP 400 with an OpenAI-style
error body naming the field; a full queue gets 503 (with Retry-After) at once; `stream: true` sends
server-sent events as the OpenAI API does. With a recorder (`fireact.gateway`), the same chat
endpoint under `/episodes/ID/v1` records every call of an agent program's episode.
"""

from __future__ import annotations

import asyncio
import json
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fireact.data import tool_calls
from fireact.data.chat import ROLES, message_text
from fireact.data.prompt_style import Prompt, PromptStyle, prompt_ids
from fireact.rollout.sampling import sampling_logprobs
from fireact.serve.adapters import AdapterStore
from fireact.serve.completion_service import END, CompletionRequest, CompletionService, Full
from fireact.serve.http_app import (
    OPEN_ROUTES,
    BadRequest,
    HTTPServer,
    error_response,
    json_app,
    json_object,
    read_body,
    request_schema,
)
from fireact.serve.schemas import ChatRequest, CompletionsRequest

MAX_BODY = 4 << 20  # bytes; a longer request body is refused before it is read
MAX_MESSAGES = 256  # per request: an agent episode has a few dozen
Record = Callable[[dict[str, Any]], None]  # takes what a chat call answered (the gateway's recorder)


def parse_request(body: bytes, max_tokens_limit: int) -> dict[str, Any]:
    """The request's fields, checked as the OpenAI API checks them (BadRequest names the field)."""
    req = json_object(body)
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    if len(messages) > MAX_MESSAGES:
        raise BadRequest(f"at most {MAX_MESSAGES} messages per request, got {len(messages)}", "messages")
    clean = [_message(m, i) for i, m in enumerate(messages)]
    _answered_calls(clean)
    tools, tool_choice = _tools(req)
    sampling = _sampling(req, max_tokens_limit, max_stop=4)
    stream = req.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", "stream")
    return {"messages": clean, **sampling, "stream": stream, "tools": tools, "tool_choice": tool_choice,
            "model": req.get("model")}  # fmt: skip


def _sampling(req: dict[str, Any], max_tokens_limit: int, max_stop: int) -> dict[str, Any]:
    """max_tokens, temperature, top_p, stop and seed of a request (chat or completions), checked."""
    max_tokens = req.get("max_completion_tokens", req.get("max_tokens"))
    max_tokens = min(256, max_tokens_limit) if max_tokens is None else max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= max_tokens_limit:
        raise BadRequest(f"max_tokens must be an integer in [1, {max_tokens_limit}], got {max_tokens!r}", "max_tokens")
    temperature = _number(req, "temperature", 1.0, 0.0, 2.0)
    top_p = _number(req, "top_p", 1.0, 0.0, 1.0)
    if top_p <= 0:
        raise BadRequest("top_p must be in (0, 1]", "top_p")
    if req.get("n", 1) != 1:
        raise BadRequest("only n=1 is supported", "n")
    stop = req.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > max_stop or not all(isinstance(s, str) and s for s in stop):
        raise BadRequest(f"stop must be a string or a list of up to {max_stop} non-empty strings", "stop")
    seed = req.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise BadRequest(f"seed must be a non-negative integer, got {seed!r}", "seed")
    return {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "stop": stop, "seed": seed}


def parse_completion_request(body: bytes, max_tokens_limit: int, vocab: int) -> dict[str, Any]:
    """A `/v1/completions` request as rollout clients send it (vLLM's surface): the prompt as text or
    token ids, `logprobs` (0 or 1: the sampled token's), `return_token_ids` /
    `return_tokens_as_token_ids` for the exact ids. No streaming, no echo."""
    req = json_object(body)
    prompt = req.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], list | str):
        prompt = prompt[0]  # a batch of one
    ids = isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    if not (isinstance(prompt, str) and prompt) and not (ids and prompt and all(0 <= t < vocab for t in prompt)):
        raise BadRequest(f"prompt must be a non-empty string or one list of token ids in [0, {vocab})", "prompt")
    logprobs = req.get("logprobs")
    if logprobs not in (None, 0, 1) or isinstance(logprobs, bool):
        raise BadRequest("logprobs must be 0 or 1 (the sampled token's log-prob; no top-k alternatives)", "logprobs")
    prompt_logprobs = req.get("prompt_logprobs")
    if prompt_logprobs not in (None, 0, 1) or isinstance(prompt_logprobs, bool):
        raise BadRequest("prompt_logprobs must be 0 or 1 (each prompt token's log-prob, and with 1 the top one)",
                         "prompt_logprobs")  # fmt: skip
    for key in ("stream", "echo"):
        if req.get(key):
            raise BadRequest(f"{key} is not supported on /v1/completions", key)
    flags = {k: req.get(k, False) for k in ("return_token_ids", "return_tokens_as_token_ids")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise BadRequest("return_token_ids and return_tokens_as_token_ids must be booleans")
    return {"prompt": prompt, **_sampling(req, max_tokens_limit, max_stop=16), "logprobs": logprobs,
            "prompt_logprobs": prompt_logprobs, "model": req.get("model"), **flags}  # fmt: skip


def _message(m: Any, i: int) -> dict[str, Any]:
    """One checked message: a role with text content, or an assistant's `tool_calls` (JSON-string
    arguments), or a `tool` result."""
    where = f"messages[{i}]"
    if not isinstance(m, dict) or m.get("role") not in (*ROLES, "tool"):
        raise BadRequest(f"{where}.role must be one of {', '.join((*ROLES, 'tool'))}", f"{where}.role")
    calls = m.get("tool_calls") if m["role"] == "assistant" else None
    try:
        content = None if calls and m.get("content") is None else message_text(m.get("content"), where)
        clean = {"role": m["role"], "content": content}
        if m["role"] == "tool" and isinstance(m.get("tool_call_id"), str):
            clean["tool_call_id"] = m["tool_call_id"]
        if calls:
            if not isinstance(calls, list) or not all(
                isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls
            ):
                raise ValueError(f"{where}.tool_calls must be a list of {{id, type, function: {{name, arguments}}}}")
            for j, c in enumerate(calls):
                _call_arguments(c["function"], f"{where}.tool_calls[{j}].function")
            clean["tool_calls"] = calls
    except BadRequest:
        raise
    except (ValueError, TypeError) as e:
        raise BadRequest(str(e), where) from None
    return clean


def _call_arguments(function: dict[str, Any], where: str) -> None:
    """A history call as the OpenAI API takes it: a name, and arguments as a JSON-object string."""
    if not isinstance(function.get("name"), str):
        raise BadRequest(f"{where}.name must be a string", f"{where}.name")
    raw = function.get("arguments")
    if not isinstance(raw, str):
        raise BadRequest(f"{where}.arguments must be a string of JSON (got {type(raw).__name__})", f"{where}.arguments")
    try:
        arguments = json.loads(raw or "{}")
    except (json.JSONDecodeError, RecursionError):
        arguments = None
    if not isinstance(arguments, dict):
        raise BadRequest(f"{where}.arguments must be a JSON object", f"{where}.arguments")


def _answered_calls(messages: list[dict[str, Any]]) -> None:
    """Every `tool` message answers a call made before it (by tool_call_id, as the OpenAI API checks)."""
    made: set[str] = set()
    for i, m in enumerate(messages):
        made |= {c.get("id") for c in m.get("tool_calls") or [] if isinstance(c.get("id"), str)}
        if m["role"] == "tool" and m.get("tool_call_id") not in made:
            raise BadRequest(f"messages[{i}]: a tool message must answer a tool call made before it by its id "
                             f"(tool_call_id {m.get('tool_call_id')!r} matches none)", f"messages[{i}].tool_call_id")  # fmt: skip


def _tools(req: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The request's function tools and its tool_choice ("auto" or "none": decoding is not
    constrained, so "required" or a named function cannot be promised and is refused)."""
    tools = req.get("tools") or []
    if tool_calls.declared_names(tools) is None:
        raise BadRequest("tools must be a list of {type: function, function: {name, description, parameters}}", "tools")
    for i, t in enumerate(tools):
        parameters = t["function"].get("parameters")
        problem = None if parameters is None else tool_calls.schema_error(parameters)
        if problem is not None:
            raise BadRequest(f"tools[{i}] ({t['function']['name']}): {problem}", f"tools[{i}].function.parameters")
    choice = req.get("tool_choice") or "auto"
    if choice not in ("auto", "none"):
        raise BadRequest(f"tool_choice {choice!r} is not supported: use 'auto' or 'none' (decoding is not constrained)",
                         "tool_choice")  # fmt: skip
    return tools, choice


def request_prompt(req: dict[str, Any], style: PromptStyle) -> tuple[Prompt, bool]:
    """(the model's prompt for a checked request, whether its reply is read for tool calls). Tools, or
    tool calls in the history, put the conversation in the tool-call protocol's rendering; a model
    trained in that protocol is offered the tools it was trained with when the request names none."""
    tools = req["tools"] or (tool_calls.TOOLS if style.speaks.declares_tools else [])
    messages = req["messages"]
    if tools or any(m["role"] == "tool" or "tool_calls" in m for m in messages):
        messages = tool_calls.hermes_messages(messages, tools)
    return style.from_messages(messages), bool(tools) and req["tool_choice"] == "auto"


def _number(req: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = req.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{key} must be a number in [{low:g}, {high:g}], got {value!r}", key)
    return float(value)


@dataclass
class ServedModel:
    """What every request handler reads: the model, how requests are written for it, its limits."""

    lm: Any
    style: PromptStyle
    name: str
    service: CompletionService
    max_tokens_limit: int
    max_context: int
    adapters: AdapterStore

    def check_context(self, prompt: Any, max_tokens: int, param: str = "messages") -> None:
        n_prompt = len(prompt_ids(prompt, self.lm.tokenizer))
        if n_prompt + max_tokens > self.max_context:
            raise BadRequest(
                f"the prompt ({n_prompt} tokens) + max_tokens ({max_tokens}) exceed the model's "
                f"context of {self.max_context} tokens", param, "context_length_exceeded",
            )  # fmt: skip

    def models(self) -> list[dict[str, Any]]:
        models = [{"id": self.name, "object": "model", "owned_by": "fireact"}]
        return models + [{"id": name, "object": "model", "owned_by": "fireact", "parent": self.name}
                         for name in self.adapters.versions]  # fmt: skip

    async def respond(self, req: dict[str, Any], record: Record | None = None) -> Response:
        """A checked chat request answered by the engine, whole or streamed; `record` gets the reply with
        the exact prompt and sampled token ids and their log-probs."""
        prompt, calls = request_prompt(req, self.style)
        self.check_context(prompt, req["max_tokens"])
        stream = queue.Queue() if req["stream"] else None
        stop = req["stop"] + [tool_calls.CALL_CLOSE] * calls  # one call a reply: stop after it
        request = CompletionRequest(prompt, stop, req["max_tokens"], req["temperature"], req["top_p"], stream,
                                    self.adapters.ref(req["model"]), req["seed"])  # fmt: skip
        self.service.submit(request)  # Full: 503, the client retries

        def done(c: Any) -> tuple[dict[str, Any], str]:
            message, finish = chat_message(c, req["max_tokens"], calls)
            if record is not None:
                record({"message": message, "finish_reason": finish, "prompt_ids": c.prompt_ids,
                        "token_ids": c.token_ids, "logprobs": c.logprobs,
                        "fmt": self.style.format, "protocol": "tool-calls" if calls else self.style.protocol})  # fmt: skip
            return message, finish

        head = completion_head("chat.completion" + ".chunk" * req["stream"], self.name)
        if stream is not None:
            return sse(stream_events(request, head, calls, done))
        try:
            c = await asyncio.wrap_future(request.result)
        except Exception as e:
            return error_response(500, f"generation failed: {type(e).__name__}: {e}")
        message, finish = done(c)
        return JSONResponse({**head, "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                             "usage": usage(c)})  # fmt: skip


def chat_message(c: Any, max_tokens: int, calls: bool) -> tuple[dict[str, Any], str]:
    """(the assistant message, the finish reason) of a completion: its `<tool_call>` blocks as
    `tool_calls` when the request offered tools."""
    split = tool_calls.split_calls(c.text) if calls else None
    if split is not None:
        return {"role": "assistant", "content": split[0] or None, "tool_calls": split[1]}, "tool_calls"
    return {"role": "assistant", "content": c.text}, _finish_reason(c, max_tokens)


def usage(c: Any) -> dict[str, int]:
    return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens}  # fmt: skip


def completion_head(kind: str, model: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": model}


def sse(events: Iterator[dict[str, Any] | str]) -> StreamingResponse:
    """Server-sent events as the OpenAI API sends them, ending with [DONE]."""

    def lines() -> Iterator[bytes]:
        for e in events:
            yield f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """One `chat.completion.chunk` of a stream."""
    return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def stream_events(request: CompletionRequest, head: dict[str, Any], calls: bool,
                  done: Callable[[Any], tuple[dict[str, Any], str]]) -> Iterator[dict[str, Any]]:  # fmt: skip
    """A role chunk, content deltas as decoded, the finish reason. With tools, text from a `<tool_call>`
    on is held back and sent as one `tool_calls` delta at the end. (Starlette runs this iterator on a
    worker thread: the queue's blocking get never stalls the event loop.)"""

    yield chunk(head, {"role": "assistant", "content": ""})
    text, sent = "", 0
    while (delta := request.stream.get()) is not END:
        text += delta
        safe = _sendable(text, calls)
        if safe > sent:
            yield chunk(head, {"content": text[sent:safe]})
            sent = safe
    try:
        c = request.result.result()
    except Exception as e:
        yield {"error": {"message": str(e), "type": "server_error"}}
        return
    message, finish = done(c)
    if "tool_calls" in message:
        yield chunk(
            head, {"tool_calls": [{"index": k, **call} for k, call in enumerate(message["tool_calls"])]}, finish
        )
        return
    if len(c.text) > sent:
        yield chunk(head, {"content": c.text[sent:]})
    yield chunk(head, {}, finish)


def completions_choice(served: ServedModel, req: dict[str, Any], c: Any) -> dict[str, Any]:
    """A `/v1/completions` choice with the sampled ids and log-probs, as rollout clients read them."""
    tok = served.lm.tokenizer
    choice: dict[str, Any] = {"index": 0, "text": c.text, "logprobs": None,
                              "finish_reason": _finish_reason(c, req["max_tokens"])}  # fmt: skip
    if req["logprobs"] is not None:
        ids = req["return_tokens_as_token_ids"]
        tokens = [f"token_id:{t}" if ids else tok.decode([t]) for t in c.token_ids]
        top = [{t: lp} for t, lp in zip(tokens, c.logprobs)] if req["logprobs"] else None
        choice["logprobs"] = {"tokens": tokens, "token_logprobs": c.logprobs, "top_logprobs": top}
    if req["return_token_ids"]:
        choice |= {"prompt_token_ids": c.prompt_ids, "token_ids": c.token_ids}
    return choice


def score_prompt(served: ServedModel, ids: list[int], adapter: tuple[str, int] | None, top: int) -> list[Any]:
    """vLLM's `prompt_logprobs`: for each prompt token after the first, {id: {logprob, rank, decoded_token}}
    of that token given the ones before it (and with `top` 1 the most likely one's too); None for the
    first. What a teacher sends to score a student's tokens (fireact.lm.teacher). Runs on the engine
    thread: one forward over the prompt, with the request's adapter."""
    tok, x = served.lm.tokenizer, torch.tensor([ids])
    names = {"adapter_names": [adapter[0]]} if adapter else {}
    with torch.no_grad():
        logits = served.lm.model(input_ids=x.to(served.lm.model.device), use_cache=False, **names).logits[0, :-1]
    lp = sampling_logprobs(logits, 1.0).cpu()
    chosen = lp.gather(-1, x[0, 1:, None])[:, 0]
    ranks = (lp > chosen[:, None]).sum(-1) + 1
    best = lp.argmax(-1)
    out: list[Any] = [None]
    for t in range(1, len(ids)):
        entry = {str(ids[t]): {"logprob": float(chosen[t - 1]), "rank": int(ranks[t - 1]), "decoded_token": tok.decode([ids[t]])}}
        if top and int(best[t - 1]) != ids[t]:
            b = int(best[t - 1])
            entry[str(b)] = {"logprob": float(lp[t - 1, b]), "rank": 1, "decoded_token": tok.decode([b])}
        out.append(entry)
    return out


def load_adapter(served: ServedModel, req: dict[str, Any]) -> dict[str, Any]:
    """vLLM's `POST /v1/load_lora_adapter` {lora_name, lora_path}: only under --allow-adapter-loading DIR."""
    store = served.adapters
    folder = store.resolve(None if store.root is None else req.get("lora_path"))
    name = store.check_name(req.get("lora_name"), loading=True)
    try:
        served.service.run_on_engine(lambda: store.load(served.lm, name, folder))
    except BadRequest:
        raise
    except Exception as e:  # peft refused it: nothing was changed (AdapterStore.load)
        raise BadRequest(f"cannot load the adapter in {folder.name}: {type(e).__name__}: {e}", "lora_path") from None
    return {"lora_name": name, "version": store.versions[name], "status": "loaded"}


def unload_adapter(served: ServedModel, req: dict[str, Any]) -> dict[str, Any]:
    store = served.adapters
    if store.root is None:
        store.resolve(None)  # the "loading is off" answer
    name = store.check_name(req.get("lora_name"), loading=False)

    def unload() -> None:
        job = served.service.job
        busy = [r for r in [*job.in_flight, *(r for _, r in job.requests.items)] if r.adapter and r.adapter[0] == name]
        if busy:
            raise BadRequest(f"adapter {name!r} is in use by {len(busy)} request(s); retry when they finish",
                             "lora_name", status=409)  # fmt: skip
        store.unload(served.lm, name)

    served.service.run_on_engine(unload)
    return {"lora_name": name, "status": "unloaded"}


def completion_app(chat: Any, api_key: str | None, max_tokens_limit: int, served: ServedModel | None) -> FastAPI:
    """The routes of `fireact serve`: chat completions by `chat` (a served model, or the gateway's
    upstream), and, for a local model, `/v1/completions`, /v1/models and the adapter routes."""
    app = json_app("fireact serve", api_key, (*OPEN_ROUTES, ""))

    @app.exception_handler(Full)
    async def busy(_: Request, e: Full) -> JSONResponse:
        return error_response(503, f"server busy ({e}); retry", code="overloaded", headers={"Retry-After": "1"})

    @app.get("/health")
    @app.get("/")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    @app.get("/models", include_in_schema=False)
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": chat.models()}

    @app.post("/v1/chat/completions", openapi_extra=request_schema(ChatRequest))
    @app.post("/chat/completions", include_in_schema=False)
    async def chat_completions(request: Request) -> Response:
        return await chat.respond(parse_request(await read_body(request, MAX_BODY), max_tokens_limit))

    if served is None:
        return app

    @app.post("/v1/completions", openapi_extra=request_schema(CompletionsRequest))
    @app.post("/completions", include_in_schema=False)
    async def completions(request: Request) -> Response:
        """Token-in, token-out completions with the sampled ids and log-probs (what rollout clients read)."""
        body = await read_body(request, MAX_BODY)
        req = parse_completion_request(body, max_tokens_limit, len(served.lm.tokenizer))
        served.check_context(req["prompt"], req["max_tokens"], "prompt")
        adapter = served.adapters.ref(req["model"])
        request = CompletionRequest(req["prompt"], req["stop"], req["max_tokens"], req["temperature"], req["top_p"],
                                    adapter=adapter, seed=req["seed"])  # fmt: skip
        served.service.submit(request)
        try:
            c = await asyncio.wrap_future(request.result)
            choice = completions_choice(served, req, c)
            if req["prompt_logprobs"] is not None:
                ids = c.prompt_ids or prompt_ids(req["prompt"], served.lm.tokenizer)
                score = partial(score_prompt, served, ids, adapter, req["prompt_logprobs"])
                choice["prompt_logprobs"] = await asyncio.to_thread(served.service.run_on_engine, score)
        except Exception as e:
            return error_response(500, f"generation failed: {type(e).__name__}: {e}")
        return JSONResponse({**completion_head("text_completion", served.name), "choices": [choice],
                             "usage": usage(c)})  # fmt: skip

    for route, action in (("load_lora_adapter", load_adapter), ("unload_lora_adapter", unload_adapter)):
        app.post(f"/v1/{route}")(_adapter_route(served, action))
        app.post(f"/{route}", include_in_schema=False)(_adapter_route(served, action))
    return app


def _adapter_route(served: ServedModel, action: Callable[[ServedModel, dict], dict]) -> Callable:
    async def route(request: Request) -> dict[str, Any]:
        req = json_object(await read_body(request, MAX_BODY))
        return await asyncio.to_thread(action, served, req)  # runs on the engine thread, between steps

    route.__doc__ = action.__doc__
    return route


def served_model(lm: Any, model_name: str | None = None, style: PromptStyle | None = None, slots: int = 16,
                 max_queue: int = 64, max_tokens_limit: int = 2048, max_context: int | None = None,
                 adapter_dir: str | None = None) -> ServedModel:  # fmt: skip
    """`style`: how requests are written for the model (default: chat messages as sent). `slots`
    requests decode together; `max_queue` more wait; prompt + max_tokens must fit `max_context`
    (default: the model's max_position_embeddings). With `adapter_dir`, LoRA adapters under it may be
    loaded at runtime (`/v1/load_lora_adapter`) and asked for by name as a request's `model`."""
    config = getattr(lm.model, "config", None)
    return ServedModel(
        lm, style or PromptStyle(), model_name or lm.name, CompletionService(lm, slots, max_queue), max_tokens_limit,
        max_context or getattr(config, "max_position_embeddings", None) or 8192,
        AdapterStore(adapter_dir, model_name or lm.name, hasattr(lm.model, "peft_config")),
    )  # fmt: skip


def make_server(lm: Any, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                **served: Any) -> HTTPServer:  # fmt: skip
    """`fireact serve` of a local model (`served_model`'s options). With `api_key`, every route but
    /health and /docs needs `Authorization: Bearer KEY`."""
    return model_server(served_model(lm, **served), host, port, api_key)


def model_server(model: ServedModel, host: str, port: int, api_key: str | None) -> HTTPServer:
    """The routes of a served model on a socket bound now (its engine is closed with the server)."""
    server = HTTPServer(completion_app(model, api_key, model.max_tokens_limit, model), host, port, model.service)
    server.model = model
    return server


def _sendable(text: str, calls: bool) -> int:
    """How much of the text streamed so far can go out as content: with tools, none from a
    `<tool_call>` on, nor a tail that may be the start of one."""
    if not calls:
        return len(text)
    at = text.find(tool_calls.CALL_OPEN)
    if at >= 0:
        return at
    tail = next(
        (k for k in range(len(tool_calls.CALL_OPEN) - 1, 0, -1) if tool_calls.CALL_OPEN.startswith(text[-k:])), 0
    )
    return len(text) - tail


def _finish_reason(c: Any, max_tokens: int) -> str:
    return "length" if c.completion_tokens >= max_tokens else "stop"
