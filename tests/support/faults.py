"""Network faults the local stand-ins inject, one per request, so every client meets the same ones.

A fault is an HTTP status ("429", "500", "503", or the int), "drop" (the connection closes before
any answer), "cut" (headers and half the body, then the connection closes), "slow" (the answer
comes SLOW seconds late, past the client's timeout) or "html" (a 200 whose body is not JSON, as a
proxy's error page). An unreachable host is `refused_url()`: a port nothing listens on.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW = 1.5  # seconds; clients under test use a shorter timeout


class LocalServer:
    """A stand-in's HTTP server on 127.0.0.1 (a free port), served while used as a context manager."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], path: str = "") -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def replaces_answer(fault: str | int | None) -> bool:
    """True when the fault answers instead of the stand-in, which must then not act on the request."""
    return fault is not None and (str(fault).isdigit() or str(fault) in ("drop", "html"))


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    fault: str | int | None = None,
    content_type: str = "application/json",
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    """Answer `status`/`body`, or what `fault` makes of it."""
    fault = None if fault is None else str(fault)
    if fault == "drop":
        handler.close_connection = True
        return
    if fault is not None and fault.isdigit():
        status = int(fault)
        body = json.dumps({"error": {"message": f"injected {fault}", "type": "server_error"}}).encode()
    elif fault == "html":
        status, body, content_type = 200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"
    elif fault == "slow":
        time.sleep(SLOW)
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("retry-after-ms", "5")  # clients that honour it (openai) retry fast in tests
        for key, value in headers:
            handler.send_header(key, value)
        handler.end_headers()
        if fault == "cut":
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (a timeout): expected under "slow"


def refused_url() -> str:
    """http://127.0.0.1:PORT where nothing listens (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
