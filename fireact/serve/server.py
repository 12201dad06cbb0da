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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fireact.data.prompt_style import PromptStyle, prompt_ids
from fireact.errors import FireactError
from fireact.serve.completion_service import END, CompletionRequest, CompletionService, Full

MAX_BODY = 4 << 20  # bytes; a longer request body is refused before it is read
ROLES = ("system", "user", "assistant")


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param, self.code = param, code


def message_text(content: Any, where: str) -> str:
    """A message's content: a string, or OpenAI content parts when every part is text (joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        if all(isinstance(p.get("text"), str) for p in content):
            return "".join(p["text"] for p in content)
    raise BadRequest(f"{where}.content must be a string or a list of text parts", where)


def parse_request(body: bytes, max_tokens_limit: int) -> dict[str, Any]:
    """The request's fields, checked as the OpenAI API checks them (BadRequest names the field)."""
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not valid JSON ({e})") from None
    if not isinstance(req, dict):
        raise BadRequest("the body must be a JSON object")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadRequest(f"messages[{i}].role must be one of {', '.join(ROLES)}", f"messages[{i}].role")
        clean.append({"role": m["role"], "content": message_text(m.get("content"), f"messages[{i}]")})
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
) -> ThreadingHTTPServer:
    """`style`: how requests are written for the model (default: chat messages as sent). `slots`
    requests decode together; `max_queue` more wait; prompt + max_tokens must fit `max_context`
    (default: the model's max_position_embeddings)."""
    style = style or PromptStyle()
    served_name = model_name or lm.name
    service = CompletionService(lm, slots, max_queue)
    config = getattr(lm.model, "config", None)
    max_context = max_context or getattr(config, "max_position_embeddings", None) or 8192

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # quiet: one line per request on stderr is noise here
            pass

        def _send(self, code: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, message: str, kind: str = "invalid_request_error", param=None, err_code=None,
                   headers=None) -> None:  # fmt: skip
            body = {"error": {"message": message, "type": kind, "param": param, "code": err_code}}
            self._send(code, body, headers)

        def do_GET(self):
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(
                    200, {"object": "list", "data": [{"id": served_name, "object": "model", "owned_by": "fireact"}]}
                )
            elif self.path.rstrip("/") in ("/health", ""):
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self):
            try:
                self._post()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer

        def _post(self):
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"no route {self.path}")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self.close_connection = True  # the unread body must not be taken for the next request
                self._error(400 if length <= MAX_BODY else 413, f"Content-Length must be in [1, {MAX_BODY}]")
                return
            try:
                req = parse_request(self.rfile.read(length), max_tokens_limit)
                prompt = style.from_messages(req["messages"])
                n_prompt = len(prompt_ids(prompt, lm.tokenizer))
                if n_prompt + req["max_tokens"] > max_context:
                    raise BadRequest(
                        f"the prompt ({n_prompt} tokens) + max_tokens ({req['max_tokens']}) exceed the model's "
                        f"context of {max_context} tokens", "messages", "context_length_exceeded",
                    )  # fmt: skip
            except BadRequest as e:
                self._error(400, str(e), param=e.param, err_code=e.code)
                return
            except FireactError as e:
                self._error(400, str(e))
                return
            stream = queue.Queue() if req["stream"] else None
            request = CompletionRequest(
                prompt, req["stop"], req["max_tokens"], req["temperature"], req["top_p"], stream
            )
            try:
                service.submit(request)
            except Full as e:
                self._error(503, f"server busy ({e}); retry", "server_error", err_code="overloaded",
                            headers={"Retry-After": "1"})  # fmt: skip
                return
            if stream is not None:
                self._stream(request, req["max_tokens"])
                return
            try:
                c = request.result.result()
            except Exception as e:
                self._error(500, f"generation failed: {type(e).__name__}: {e}", "server_error")
                return
            self._send(200, {
                **self._head("chat.completion"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                             "finish_reason": _finish_reason(c, req["max_tokens"])}],
                "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                          "total_tokens": c.prompt_tokens + c.completion_tokens},
            })  # fmt: skip

        def _head(self, kind: str) -> dict[str, Any]:
            return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
                    "model": served_name}  # fmt: skip

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
                self.wfile.write(
                    f"data: {json.dumps({'error': {'message': str(e), 'type': 'server_error'}})}\n\n".encode()
                )
            else:
                event({}, _finish_reason(c, max_tokens))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.service = service  # closed by the caller with the server
    return server


def _finish_reason(c: Any, max_tokens: int) -> str:
    return "length" if c.completion_tokens >= max_tokens else "stop"
