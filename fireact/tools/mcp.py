"""Tools from an MCP server, through the official `mcp` SDK: `list_tools` gives their schemas,
`call_tool` their observations.

The SDK is asynchronous and the rollout engine calls tools from its worker threads, so one server
session lives on its own event loop thread and every call is handed to it. A call that fails inside
the server (`isError`) is an observation the agent reads; a server that never starts, dies or stops
answering is a `ToolError` carrying the tail of its stderr: the episode ends with `error`, the run
goes on, nothing hangs (every wait has a timeout).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import tempfile
import threading
from concurrent import futures
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fireact.errors import FireactError
from fireact.tools.base import ToolError
from fireact.tools.function import TIMEOUT_S, Tool

START_TIMEOUT_S = 60.0


@dataclass
class MCPServer:
    """An MCP server: `command` (argv, spoken to over stdio) or `url` (streamable HTTP).

    `tools`: the names to expose (default: all the server lists); `env`: extra environment variables
    for the server process; `timeout`: seconds per call.
    """

    command: list[str] | None = None
    url: str | None = None
    tools: list[str] | None = None
    env: dict[str, str] | None = None
    timeout: float = TIMEOUT_S
    _loop: Any = field(default=None, init=False, repr=False)
    _session: Any = field(default=None, init=False, repr=False)
    _stop: Any = field(default=None, init=False, repr=False)
    _errlog: Any = field(default=None, init=False, repr=False)
    _listed: list[Tool] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise FireactError("MCPServer takes a command (stdio) or a url (streamable HTTP), exactly one")
        if self.command is not None and (
            not isinstance(self.command, list) or not self.command or not all(isinstance(c, str) for c in self.command)
        ):
            raise FireactError(f"MCPServer command must be a non-empty list of strings, got {self.command!r}")

    @property
    def label(self) -> str:
        return " ".join(self.command) if self.command else str(self.url)

    def stderr_tail(self, chars: int = 1500) -> str:
        if self._errlog is None:
            return ""
        self._errlog.flush()
        with open(self._errlog.name, encoding="utf-8", errors="replace") as f:
            return f.read()[-chars:].strip()

    def _failure(self, what: str) -> str:
        tail = self.stderr_tail()
        return f"MCP server {self.label!r} {what}" + (f"; its stderr ends:\n{tail}" if tail else "")

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> list[Tool]:
        """Start the server (once) and list its tools as fireact Tools; FireactError naming the
        server and its stderr when it does not come up."""
        if self._listed is not None:
            return self._listed
        self._errlog = tempfile.NamedTemporaryFile("w+", prefix="fireact-mcp-", suffix=".log", delete=False)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="fireact-mcp", daemon=True).start()
        self._ready: futures.Future = futures.Future()
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        try:
            listed = self._ready.result(START_TIMEOUT_S)
        except futures.TimeoutError:
            message = self._failure(f"did not answer within {START_TIMEOUT_S:g} s")
            self.close()
            raise FireactError(message) from None
        except Exception as e:  # noqa: BLE001  (whatever the transport raised: say it, with the stderr)
            message = self._failure(f"failed to start ({_reason(e)})")
            self.close()
            raise FireactError(message) from None
        atexit.register(self.close)
        wanted = set(self.tools) if self.tools is not None else None
        missing = sorted((wanted or set()) - {t.name for t in listed})
        if missing:
            self.close()
            raise FireactError(f"MCP server {self.label!r} has no tool(s) {', '.join(missing)}")
        self._listed = [
            Tool(t.name, t.description or "", t.inputSchema or {"type": "object", "properties": {}},
                 lambda _name=t.name, **kw: self.call(_name, kw), timeout=self.timeout + 5)
            for t in listed if wanted is None or t.name in wanted
        ]  # fmt: skip
        return self._listed

    async def _run(self) -> None:
        from mcp import ClientSession  # lazy: the SDK (pydantic, httpx, anyio) only where a server is used

        self._stop = asyncio.Event()
        try:
            async with self._transport() as streams, ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                listed = await session.list_tools()
                self._session = session
                self._ready.set_result(listed.tools)
                await self._stop.wait()
        except BaseException as e:  # noqa: BLE001  (reported to start() or to the next call)
            if not self._ready.done():
                self._ready.set_exception(e)
        finally:
            self._session = None

    def _transport(self) -> Any:
        if self.command is not None:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(command=self.command[0], args=self.command[1:],
                                           env={**os.environ, **(self.env or {})})  # fmt: skip
            return stdio_client(params, errlog=self._errlog)
        from mcp.client.streamable_http import streamable_http_client

        return streamable_http_client(self.url)

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """One tool call's observation; a failure inside the server is `Error: ...` text, a server
        that is gone a ToolError."""
        session = self._session
        if session is None:
            raise ToolError(self._failure("is not running"))
        wait = timedelta(seconds=self.timeout)
        fut = asyncio.run_coroutine_threadsafe(
            session.call_tool(name, arguments, read_timeout_seconds=wait), self._loop
        )
        try:
            result = fut.result(self.timeout + 2)
        except futures.TimeoutError:
            fut.cancel()
            return f"Error: {name} did not answer within {self.timeout:g} s."
        except Exception as e:  # noqa: BLE001  (a closed stream, a dead process, a timeout error from the SDK)
            if self._session is not None and "timed out" in str(e).lower():
                return f"Error: {name} did not answer within {self.timeout:g} s."
            raise ToolError(self._failure(f"failed on {name} ({_reason(e)})")) from None
        text = "\n".join(getattr(c, "text", None) or str(c) for c in result.content)
        return f"Error: {text}" if result.isError and not text.startswith("Error") else text

    def close(self) -> None:
        """Stop the session and the server process (idempotent)."""
        loop, stop = self._loop, self._stop
        if loop is None:
            return
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        try:
            self._main.result(10)
        except Exception:  # noqa: BLE001, S110  (closing: the failure was already reported where it happened)
            pass
        loop.call_soon_threadsafe(loop.stop)
        self._loop = self._stop = None
        self._listed = None
        if self._errlog is not None:  # the server's stderr, kept only while it runs
            self._errlog.close()
            Path(self._errlog.name).unlink(missing_ok=True)
            self._errlog = None


def _reason(e: BaseException) -> str:
    """The first real exception inside anyio's exception groups, as one line."""
    while getattr(e, "exceptions", None):  # BaseExceptionGroup (a backport on Python 3.10)
        e = e.exceptions[0]  # type: ignore[attr-defined]
    return f"{type(e).__name__}: {e}".strip().rstrip(":")
