"""Retries for the HTTP calls fireact makes itself (GitHub download, SerpAPI, Hub push).

The openai client retries on its own; these three use plain HTTP libraries, so they share this one
policy: retry what a retry can fix (refused/reset/dropped connections, timeouts, 429 and 5xx), give
up at once on the rest (401/403/404, a body that is not what was asked for), and say which it was.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
from collections.abc import Callable
from typing import TypeVar

from fireact.errors import FireactError
from fireact.secrets import redact

T = TypeVar("T")

DELAYS = (1.0, 4.0, 10.0)  # seconds before retries 1, 2, 3; tests shrink it
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# requests' and httpx's connection, timeout and dropped-body errors, matched by name (no import needed)
NETWORK_ERRORS = frozenset(
    {
        "ConnectionError",
        "ConnectError",
        "Timeout",
        "TimeoutException",
        "ChunkedEncodingError",
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
        "NetworkError",
        "ProtocolError",
    }
)


class HTTPStatusError(OSError):
    """A reply whose status says the request failed (raised by callers that see the status)."""

    def __init__(self, status: int, detail: str = ""):
        super().__init__(f"HTTP {status}{': ' + detail if detail else ''}")
        self.status = status


def status_of(e: BaseException) -> int | None:
    for attr in ("status", "code", "status_code"):
        value = getattr(e, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(e, "response", None)  # requests / httpx / huggingface_hub errors
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def is_transient(e: BaseException) -> bool:
    """True when the same request may well succeed a little later."""
    status = status_of(e)
    if status is not None:
        return status in RETRY_STATUS
    transient = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)
    if isinstance(e, transient):  # refused, reset, unresolvable (offline), timed out, dropped mid-body
        return True
    # requests / httpx name their connection, timeout and protocol errors this way; no import needed
    names = {c.__name__ for c in type(e).__mro__}
    return bool(names & NETWORK_ERRORS)


def describe(e: BaseException, secrets: tuple[str | None, ...] = ()) -> str:
    """One line: the error's class and first line (secrets redacted: URLs may carry a key), never a traceback."""
    text = redact(str(e), secrets).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text and text[0] else type(e).__name__


def with_retries(call: Callable[[], T], what: str, secrets: tuple[str | None, ...] = ()) -> T:
    """`call()`, retried after each transient failure; FireactError naming `what` and whether running
    again may help once the retries are spent or the failure is permanent."""
    delays = DELAYS  # read at call time: tests shrink it
    for attempt in range(len(delays) + 1):
        try:
            return call()
        except FireactError:
            raise
        except Exception as e:  # classified below: nothing escapes as a traceback
            if not is_transient(e):
                raise FireactError(
                    f"{what} failed: {describe(e, secrets)} (not a transient error: retrying will not help)"
                ) from None
            if attempt == len(delays):
                raise FireactError(
                    f"{what} failed after {attempt + 1} attempts: {describe(e, secrets)} (transient: run again later)"
                ) from None
            time.sleep(delays[attempt])
    raise AssertionError("unreachable")
