"""The HTTP plumbing fireact's servers share: JSON replies, OpenAI-style JSON errors for every
failure (an unknown method or path included, never the stdlib's HTML page), bounded bodies, and a
socket timeout so a slow client cannot hold a handler thread forever."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error",
               413: "invalid_request_error", 503: "server_error", 500: "server_error"}  # fmt: skip


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param, self.code = param, code


def parse_json(body: bytes) -> Any:
    """The body as JSON; BadRequest (never a RecursionError) for anything else, deep nesting included."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not valid JSON ({e})") from None
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None


class JSONHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30.0  # seconds a client may take to send its request
    max_body = 4 << 20

    def log_message(self, format: str, *args: Any) -> None:  # requests are not logged (they may hold user data)
        pass

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_json_error(self, status: int, message: str, param: str | None = None, code: str | None = None,
                        headers: dict[str, str] | None = None) -> None:  # fmt: skip
        err = {
            "message": message,
            "type": ERROR_TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
        self.send_json(status, {"error": err}, headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own errors (unsupported method, malformed request line) as JSON too."""
        self.close_connection = True
        if code == 501:
            code, message = 405, f"method {self.command} is not allowed here"
        try:
            self.send_json_error(code, message or self.responses.get(code, ("error",))[0])
        except OSError:
            pass

    def read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if length > self.max_body:
            self.close_connection = True
            raise BadRequest(f"the body is {length} bytes; at most {self.max_body} are accepted", code="413")
        return self.rfile.read(length)


def serve_until_stopped(server: ThreadingHTTPServer, what: str, route: str) -> None:
    """Serve until Ctrl-C; then close the socket and the server's worker (`server.service`)."""
    host, port = server.server_address[:2]
    print(f"serving {what} on http://{host}:{port}{route}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        server.service.close()
