"""An OpenAI-compatible `/v1/chat/completions` endpoint for a local model (`fireact serve`).

Requests share the continuous-batching engine (`completion_service.py`): concurrent clients are
decoded together instead of queueing behind a lock. Bad requests get HTTP 400 with an OpenAI-style
error body; a full queue gets 503 (with Retry-After) at once; `stream: true` sends server-sent
events as the OpenAI API does.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from fireact.data.chat import ROLES, message_text
from fireact.data.prompt_style import PromptStyle, prompt_ids
from fireact.errors import FireactError
from fireact.serve.completion_service import END, CompletionRequest, CompletionService, Full
from fireact.serve.json_http import BadRequest, JSONHandler, parse_json

MAX_BODY = 4 << 20
MAX_MESSAGES = (
    256  # per request: an agent episode has a few dozen  # bytes; a longer request body is refused before it is read
)


def parse_request(body: bytes, max_tokens_limit: int) -> dict[str, Any]:
    """The request's fields, checked as the OpenAI API checks them (BadRequest names the field)."""
    req = parse_json(body)
    if not isinstance(req, dict):
        raise BadRequest("the body must be a JSON object")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    if len(messages) > MAX_MESSAGES:
        raise BadRequest(f"at most {MAX_MESSAGES} messages per request, got {len(messages)}", "messages")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadRequest(f"messages[{i}].role must be one of {', '.join(ROLES)}", f"messages[{i}].role")
        try:
            clean.append({"role": m["role"], "content": message_text(m.get("content"), f"messages[{i}]")})
        except ValueError as e:
            raise BadRequest(str(e), f"messages[{i}]") from None
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
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise BadRequest("stop must be a string or a list of up to 4 non-empty strings", "stop")
    stream = req.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", "stream")
    return {"messages": clean, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
            "stop": stop, "stream": stream}  # fmt: skip


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


class CompletionHandler(JSONHandler):
    """/v1/chat/completions, /v1/models and /health; every failure is an OpenAI-style JSON error."""

    app: ServedModel  # set on the subclass make_server builds
    max_body = MAX_BODY
    open_routes = ("/health", "")

    def do_GET(self) -> None:
        if not self.authorized():
            return
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            models = [{"id": self.app.name, "object": "model", "owned_by": "fireact"}]
            self.send_json(200, {"object": "list", "data": models})
        elif self.path.rstrip("/") in ("/health", ""):
            self.send_json(200, {"status": "ok"})
        else:
            self.send_json_error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        if not self.authorized():
            return
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to answer

    def _read(self) -> tuple[dict[str, Any], Any]:
        """(checked request, prompt); BadRequest or FireactError say what is wrong with it."""
        length = self.headers.get("Content-Length")
        if not length or not length.isdigit() or int(length) == 0:
            self.close_connection = True  # an unread body must not be taken for the next request
            raise BadRequest(f"Content-Length must be in [1, {MAX_BODY}]")
        req = parse_request(self.read_body(), self.app.max_tokens_limit)
        prompt = self.app.style.from_messages(req["messages"])
        n_prompt = len(prompt_ids(prompt, self.app.lm.tokenizer))
        if n_prompt + req["max_tokens"] > self.app.max_context:
            raise BadRequest(
                f"the prompt ({n_prompt} tokens) + max_tokens ({req['max_tokens']}) exceed the model's "
                f"context of {self.app.max_context} tokens", "messages", "context_length_exceeded",
            )  # fmt: skip
        return req, prompt

    def _post(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self.send_json_error(404, f"no route {self.path}")
            return
        try:
            req, prompt = self._read()
        except BadRequest as e:
            status = 413 if e.code == "413" else 400
            self.send_json_error(status, str(e), e.param, None if status == 413 else e.code)
            return
        except FireactError as e:
            self.send_json_error(400, str(e))
            return
        stream = queue.Queue() if req["stream"] else None
        request = CompletionRequest(prompt, req["stop"], req["max_tokens"], req["temperature"], req["top_p"], stream)
        try:
            self.app.service.submit(request)
        except Full as e:
            self.send_json_error(503, f"server busy ({e}); retry", code="overloaded", headers={"Retry-After": "1"})
            return
        if stream is not None:
            self._stream(request, req["max_tokens"])
        else:
            self._answer(request, req["max_tokens"])

    def _answer(self, request: CompletionRequest, max_tokens: int) -> None:
        try:
            c = request.result.result()
        except Exception as e:
            self.send_json_error(500, f"generation failed: {type(e).__name__}: {e}")
            return
        self.send_json(200, {
            **self._head("chat.completion"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                         "finish_reason": _finish_reason(c, max_tokens)}],
            "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                      "total_tokens": c.prompt_tokens + c.completion_tokens},
        })  # fmt: skip

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
                "model": self.app.name}  # fmt: skip

    def _stream(self, request: CompletionRequest, max_tokens: int) -> None:
        """Server-sent events: a role chunk, content deltas as decoded, the finish reason, [DONE]."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        head = self._head("chat.completion.chunk")

        def event(delta: dict, finish: str | None = None) -> None:
            chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        event({"role": "assistant", "content": ""})
        while (delta := request.stream.get()) is not END:
            event({"content": delta})
        try:
            c = request.result.result()
        except Exception as e:
            self.wfile.write(f"data: {json.dumps({'error': {'message': str(e), 'type': 'server_error'}})}\n\n".encode())
        else:
            event({}, _finish_reason(c, max_tokens))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def make_server(
    lm: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    style: PromptStyle | None = None,
    slots: int = 16,
    max_queue: int = 64,
    max_tokens_limit: int = 2048,
    max_context: int | None = None,
    api_key: str | None = None,
) -> ThreadingHTTPServer:
    """`style`: how requests are written for the model (default: chat messages as sent). `slots`
    requests decode together; `max_queue` more wait; prompt + max_tokens must fit `max_context`
    (default: the model's max_position_embeddings). With `api_key`, every route but /health needs
    `Authorization: Bearer KEY`."""
    config = getattr(lm.model, "config", None)
    app = ServedModel(
        lm, style or PromptStyle(), model_name or lm.name, CompletionService(lm, slots, max_queue), max_tokens_limit,
        max_context or getattr(config, "max_position_embeddings", None) or 8192,
    )  # fmt: skip
    server = ThreadingHTTPServer((host, port), type("Handler", (CompletionHandler,), {"app": app, "api_key": api_key}))
    server.daemon_threads = True
    server.service = app.service  # closed by the caller with the server
    return server


def _finish_reason(c: Any, max_tokens: int) -> str:
    return "length" if c.completion_tokens >= max_tokens else "stop"
