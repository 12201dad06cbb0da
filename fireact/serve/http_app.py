"""What fireact's HTTP servers share, on the stack the field's OpenAI-compatible servers use
(FastAPI/Starlette on uvicorn, as vLLM, SGLang and Search-R1's retriever): an API key checked on every
protected route (Bearer, constant-time, as vLLM's --api-key), OpenAI-style JSON errors for every
failure (an unknown route or method included), bounded bodies read under a deadline, a deadline on
a request's head, and a loopback default. Async I/O: a slow or idle client holds a socket, not a
thread, and the deadlines close it."""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import json
import os
import socket
import sys
import threading
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from fireact.errors import FireactError

API_KEY_VAR = "FIREACT_API_KEY"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
               409: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error", 502: "server_error", 503: "server_error",
               500: "server_error"}  # fmt: skip
REQUEST_SECONDS = 30.0  # a client gets this long to send a request's head, and again its body
MAX_CONNECTIONS = 1024  # beyond, new connections get 503 (uvicorn's limit_concurrency)
OPEN_ROUTES = ("/health", "/docs", "/openapi.json")  # answered without a key (vLLM: /health and /docs too)


class BadRequest(ValueError):
    """A request the server refuses: `status` (400 unless said), the field it names (`param`), a code."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.code, self.status = param, code, status


def parse_json(body: bytes) -> Any:
    """The body as JSON; BadRequest (never a RecursionError) for anything else, deep nesting included."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not valid JSON ({e})") from None
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None


def json_object(body: bytes) -> dict[str, Any]:
    req = parse_json(body)
    if not isinstance(req, dict):
        raise BadRequest("the body must be a JSON object")
    return req


def request_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A route's JSON body as the OpenAPI schema at /docs shows it. The route reads the body itself
    (bounded, under a deadline, deep nesting refused) and checks it field by field, each error naming
    the field as the OpenAI API does."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def validated(model: type[BaseModel], body: bytes) -> Any:
    """The body as `model`; BadRequest naming the first field pydantic refused, and what it got."""
    try:
        return model.model_validate(json_object(body))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"])) or None
        raise BadRequest(f"{where or 'the body'}: {first['msg']} (got {first.get('input')!r:.60})", where) from None


def resolve_api_key(flag: str | None) -> str | None:
    """--api-key wins; else $FIREACT_API_KEY; else none (then only loopback may be served). Stripped, as
    the token a request sends is: a key pasted with a trailing space or newline must still match."""
    return (flag or os.environ.get(API_KEY_VAR) or "").strip() or None


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


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    err = {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"), "param": param, "code": code}
    return JSONResponse({"error": err}, status, headers)


class KeyGuard:
    """ASGI middleware: every route but the open ones needs `Authorization: Bearer KEY` (401 otherwise;
    the key is never echoed). Runs before routing, so an unknown route is no oracle either. A POST must
    say `Content-Type: application/json` (415 otherwise): a web page can send text/plain to 127.0.0.1
    without a CORS preflight, and must not drive a loopback server that has no key."""

    def __init__(self, app: Any, api_key: str | None, open_routes: tuple[str, ...]):
        self.app, self.api_key, self.open_routes = app, api_key, open_routes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            kind = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
            if kind != b"application/json":
                shown = kind.decode("latin-1")[:60] or "none"
                response = error_response(415, f"Content-Type must be application/json, got {shown}", "Content-Type")
                await response(scope, receive, send)
                return
        if scope["type"] == "http" and self.api_key is not None and scope["path"].rstrip("/") not in self.open_routes:
            sent = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = sent.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
                response = error_response(401, "missing or wrong API key: send `Authorization: Bearer KEY`",
                                          code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_body(request: Request, max_body: int) -> bytes:
    """The body, refused (413) past `max_body` bytes, whatever Content-Length says, and cut (408) when
    the client takes longer than REQUEST_SECONDS to send it."""
    length = request.headers.get("content-length")
    if length is not None and not length.isdigit():
        raise BadRequest("Content-Length is not a number")
    if length is not None and int(length) > max_body:
        raise BadRequest(f"the body is {length} bytes; at most {max_body} are accepted", status=413)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(REQUEST_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body:
                    raise BadRequest(f"the body is over {max_body} bytes", status=413)
                chunks.append(chunk)
    except TimeoutError:
        raise BadRequest(f"the body took over {REQUEST_SECONDS:g} s to arrive", status=408) from None
    return b"".join(chunks)


def json_app(title: str, api_key: str | None, open_routes: tuple[str, ...]) -> FastAPI:
    """A FastAPI app whose every failure is an OpenAI-style JSON error, behind the key guard."""
    app = FastAPI(title=title, openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, e: BadRequest) -> JSONResponse:
        code = e.code if e.status == 400 else None
        return error_response(e.status, str(e), e.param, code, {"Connection": "close"} if e.status >= 408 else None)

    @app.exception_handler(FireactError)
    async def refused(_: Request, e: FireactError) -> JSONResponse:
        return error_response(400, str(e))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        if e.status_code == 405:
            return error_response(405, f"method {request.method} is not allowed on {request.url.path}")
        if e.status_code == 404:
            return error_response(404, f"no route {request.method} {request.url.path}")
        return error_response(e.status_code, str(e.detail))

    app.add_middleware(KeyGuard, api_key=api_key, open_routes=open_routes)
    return app


class _Deadlines(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each request's head: a client that connects and
    trickles bytes (or sends nothing) is closed after REQUEST_SECONDS, as is an idle kept-alive one."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def _arm(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()  # the deadline runs from the last response, not the connection's start
        self._head_timer = self.loop.call_later(REQUEST_SECONDS, self._expire)

    def _expire(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_timer.cancel()
        super().connection_lost(exc)


class HTTPServer:
    """A uvicorn server bound at once (a taken port fails here, `port=0` picks a free one), served by
    `serve_forever` on the calling thread until `shutdown`. `service` is what `close_service` stops."""

    def __init__(self, app: Any, host: str, port: int, service: Any = None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError:
            self.socket.close()
            raise
        self.socket.listen(2048)
        self.server_address = self.socket.getsockname()
        config = uvicorn.Config(app, log_config=None, access_log=False, http=_Deadlines, lifespan="off",
                                timeout_keep_alive=int(REQUEST_SECONDS), limit_concurrency=MAX_CONNECTIONS)  # fmt: skip
        self.uvicorn = uvicorn.Server(config)
        self.service = service
        self.model: Any = None  # what it serves, for a caller that asks
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self.uvicorn.should_exit = True
        self._stopped.wait(timeout=30)

    def server_close(self) -> None:
        self.socket.close()

    def close_service(self) -> None:
        if self.service is not None:
            self.service.close()


def serve_until_stopped(server: HTTPServer, what: str, route: str) -> None:
    """Serve until Ctrl-C; then close the socket and the server's worker (`server.service`)."""
    host, port = server.server_address[:2]
    print(f"serving {what} on http://{host}:{port}{route} (API docs: /docs)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        server.close_service()


def add_server_security(p: argparse.ArgumentParser) -> None:
    """The options every fireact server takes: who may call it."""
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback: this machine only)")
    p.add_argument(
        "--api-key", help=f"require `Authorization: Bearer KEY` (prefer ${API_KEY_VAR}: a flag shows in `ps`)"
    )
    p.add_argument("--allow-unauthenticated", action="store_true",
                   help="serve a non-loopback --host without a key, on purpose (a trusted network only)")  # fmt: skip
