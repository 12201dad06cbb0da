"""An OpenAI-compatible `/v1/chat/completions` endpoint for a local model (`fireact serve`).

Stdlib ThreadingHTTPServer; generation is serialised by a lock (one model, CPU-bound), so
concurrent clients queue instead of oversubscribing the cores.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fireact.agent.lm import LM
from fireact.data.errors import FireactError
from fireact.data.prompt_style import PromptStyle


def make_server(
    lm: LM, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None, style: PromptStyle | None = None
):
    """`style`: how requests are written for the model (default: chat messages as sent)."""
    style = style or PromptStyle()
    lock = threading.Lock()
    served_name = model_name or lm.name

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # quiet: one line per request on stderr is noise here
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, message: str) -> None:
            self._send(code, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

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
                length = int(self.headers.get("Content-Length", "0"))
                req = json.loads(self.rfile.read(length) or b"{}")
                messages = req["messages"]
                if not isinstance(messages, list) or not all(
                    isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in messages
                ):
                    raise ValueError("messages must be a list of {role, content} objects")
                stop = req.get("stop") or []
                stop = [stop] if isinstance(stop, str) else list(stop)
                max_tokens = int(req.get("max_tokens") or req.get("max_completion_tokens") or 256)
                temperature = float(req.get("temperature", 1.0) if req.get("temperature") is not None else 1.0)
                if int(req.get("n") or 1) != 1:
                    raise ValueError("only n=1 is supported")
                prompt = style.from_messages(messages)
            except (ValueError, KeyError, TypeError, FireactError) as e:
                self._error(400, f"bad request: {e}")
                return
            with lock:
                (c,) = lm.complete([prompt], stop, max_tokens, temperature)
            if c.error:
                self._error(500, c.error)
                return
            finish = "length" if c.completion_tokens >= max_tokens else "stop"
            self._send(
                200,
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": served_name,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": c.text}, "finish_reason": finish}
                    ],
                    "usage": {
                        "prompt_tokens": c.prompt_tokens,
                        "completion_tokens": c.completion_tokens,
                        "total_tokens": c.prompt_tokens + c.completion_tokens,
                    },
                },
            )

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
