"""Chat completions forwarded to another OpenAI-compatible server (OpenAI itself, vLLM, another
`fireact serve`): the teacher behind the gateway. Its answers are recorded as text and tool calls (no
token ids: the teacher's tokenizer is not the student's). The key for the upstream comes only from
$FIREACT_UPSTREAM_API_KEY, else $OPENAI_API_KEY, never from a flag or a request, and is never logged."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import openai
from fastapi.responses import JSONResponse, Response

from fireact.serve.http_app import BadRequest
from fireact.serve.server import chunk, completion_head, sse

UPSTREAM_KEY_VAR = "FIREACT_UPSTREAM_API_KEY"


class UpstreamChat:
    def __init__(self, url: str, model: str | None = None, timeout: float = 600.0):
        key = os.environ.get(UPSTREAM_KEY_VAR) or os.environ.get("OPENAI_API_KEY") or "none"
        self.url, self.model = url, model
        self.name = model or "upstream"  # what its recorded episodes say answered them
        # the client's own retries (with backoff) for a transient upstream failure; then 502 to our client
        self.client = openai.AsyncOpenAI(base_url=url, api_key=key, timeout=timeout, max_retries=2)

    def models(self) -> list[dict[str, Any]]:
        return [{"id": self.name, "object": "model", "owned_by": "upstream"}]

    async def respond(self, req: dict[str, Any], record: Callable[[dict[str, Any]], None] | None = None) -> Response:
        sampling = {k: req[k] for k in ("temperature", "top_p", "seed") if req[k] is not None}
        extra = {"tools": req["tools"], "tool_choice": req["tool_choice"]} if req["tools"] else {}
        try:
            r = await self.client.chat.completions.create(
                model=self.model or req["model"] or "", messages=req["messages"], max_tokens=req["max_tokens"],
                **({"stop": req["stop"]} if req["stop"] else {}), **sampling, **extra,
            )  # fmt: skip
        except openai.APIStatusError as e:
            status = e.status_code if 400 <= e.status_code < 500 and e.status_code not in (401, 403) else 502
            raise BadRequest(
                f"the upstream {self.url} answered HTTP {e.status_code}: {_said(e)}", status=status
            ) from None
        except openai.APIError as e:
            raise BadRequest(
                f"the upstream {self.url} is unreachable ({type(e).__name__}); retry", status=502
            ) from None
        choice = r.choices[0]
        message: dict[str, Any] = {"role": "assistant", "content": choice.message.content}
        if choice.message.tool_calls:
            message["tool_calls"] = [
                c.model_dump(include={"id", "type", "function"}) for c in choice.message.tool_calls
            ]
        if record is not None:
            record({"message": message, "finish_reason": choice.finish_reason, "upstream_model": r.model})
        if not req["stream"]:
            return JSONResponse(r.model_dump(exclude_none=True))
        return sse(_chunks(message, choice.finish_reason, completion_head("chat.completion.chunk", r.model)))


def _said(e: openai.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    return str((body.get("error") or body).get("message") or e.message)[:300]


def _chunks(message: dict[str, Any], finish: str | None, head: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A whole answer as a stream: the role, the content, the tool calls, the finish reason."""

    yield chunk(head, {"role": "assistant", "content": ""})
    if message.get("content"):
        yield chunk(head, {"content": message["content"]})
    if message.get("tool_calls"):
        yield chunk(head, {"tool_calls": [{"index": k, **c} for k, c in enumerate(message["tool_calls"])]})
    yield chunk(head, {}, finish or "stop")
