"""The HTTP plumbing fireact's servers share: an API key checked on every protected route (Bearer,
constant-time, as vLLM's --api-key), JSON replies, OpenAI-style JSON errors for every failure (an
unknown method or path included, never the stdlib's HTML page), bounded bodies, and a socket timeout
so a slow client cannot hold a handler thread forever."""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fireact.errors import FireactError

API_KEY_VAR = "FIREACT_API_KEY"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
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


def resolve_api_key(flag: str | None) -> str | None:
    """--api-key wins; else $FIREACT_API_KEY; else none (then only loopback may be served)."""
    return flag or os.environ.get(API_KEY_VAR) or None


def check_bind(host: str, api_key: str | None, allow_unauthenticated: bool) -> None:
    """Refuse to serve a non-loopback address without a key, unless asked to on purpose."""
    if api_key or allow_unauthenticated or is_loopback(host):
        return
    raise FireactError(
        f"refusing to serve on {host} without an API key: anyone who can reach it could use it. Set "
        f"${API_KEY_VAR} (clients send it as `Authorization: Bearer KEY`), or pass --allow-unauthenticated"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class JSONHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30.0  # seconds a client may take to send its request
    max_body = 4 << 20
    api_key: str | None = None  # set on the subclass a server builds; None: no key asked
    open_routes: tuple[str, ...] = ("/health",)  # answered without a key (vLLM: /health too)

    def authorized(self) -> bool:
        """True, or a 401 has been sent: the route needs the key and the request lacks it."""
        if self.api_key is None or self.path.split("?")[0].rstrip("/") in self.open_routes:
            return True
        sent = self.headers.get("Authorization", "")
        scheme, _, token = sent.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            return True
        self.close_connection = True
        self.send_json_error(401, "missing or wrong API key: send `Authorization: Bearer KEY`",
                             code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        return False

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


def add_server_security(p: argparse.ArgumentParser) -> None:
    """The options every fireact server takes: who may call it."""
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback: this machine only)")
    p.add_argument(
        "--api-key", help=f"require `Authorization: Bearer KEY` (prefer ${API_KEY_VAR}: a flag shows in `ps`)"
    )
    p.add_argument("--allow-unauthenticated", action="store_true",
                   help="serve a non-loopback --host without a key, on purpose (a trusted network only)")  # fmt: skip
