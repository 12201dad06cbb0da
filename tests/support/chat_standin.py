"""A chat-completions server for the real openai client: every request gets `reply` (a finish action, or
what a function of the request body returns: a scripted teacher's text, or its whole message
with `tool_calls`),
unless a fault from `faults` comes first (one per request, see faults.py) or the request's messages
contain one of the `failing` strings (then HTTP 500, every time: a question whose episode cannot finish)."""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from faults import LocalServer, send


class ChatStandIn(LocalServer):
    def __init__(self, reply: str | Callable[[dict], str] = "Thought: easy\nAction: finish[Paris]") -> None:
        self.reply = reply
        self.faults: list[str | None] = []
        self.failing: set[str] = set()
        self.seen: list[dict] = []  # {"body": request JSON, "auth": Authorization header}
        super().__init__(self._handler(), "/v1")

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                standin.seen.append({"body": body, "auth": self.headers.get("Authorization")})
                fault = standin.faults.pop(0) if standin.faults else None
                if any(s in json.dumps(body["messages"]) for s in standin.failing):
                    fault = "500"
                reply = standin.reply(body) if callable(standin.reply) else standin.reply
                message = reply if isinstance(reply, dict) else {"role": "assistant", "content": reply}
                finish = "tool_calls" if message.get("tool_calls") else "stop"
                reply = {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
                }
                send(self, 200, json.dumps(reply).encode(), fault)

        return Handler
