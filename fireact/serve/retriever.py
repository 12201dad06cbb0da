"""`fireact retriever serve`: a local retriever behind Search-R1's `POST /retrieve`, so fireact's
agents and other stacks (Search-R1, ReSearch, verl tool agents) can share one offline world.

Requests are queued (bounded: a full queue is 503 at once) and a worker answers all waiting
queries in one batched search. `GET /health` says what is served.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from fireact.serve import http_app
from fireact.serve.http_app import BadRequest, HTTPServer, error_response
from fireact.tools.wiki import WikiSearch

MAX_QUERIES, MAX_TOPK = 256, 100  # per request
MAX_BODY = 4 << 20


@dataclass
class _Request:
    queries: list[str]
    topk: int
    result: Future = field(default_factory=Future)


class RetrievalService:
    """One worker thread; each round takes every waiting request (up to `max_batch` queries)."""

    def __init__(self, search: WikiSearch, max_queue: int = 64, max_batch: int = 64):
        self.search, self.max_batch = search, max_batch
        self.queue: queue.Queue[_Request | None] = queue.Queue(max_queue)
        self.worker = threading.Thread(target=self._work, name="retrieval", daemon=True)
        self.worker.start()

    def submit(self, queries: list[str], topk: int) -> Future:
        """Raises queue.Full when the queue is full."""
        req = _Request(queries, topk)
        self.queue.put_nowait(req)
        return req.result

    def _work(self) -> None:
        while (first := self.queue.get()) is not None:
            batch = [first]
            while sum(len(r.queries) for r in batch) < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)
                    break
                batch.append(nxt)
            try:
                hits = self.search.retrieve([q for r in batch for q in r.queries], max(r.topk for r in batch))
            except Exception as e:  # handed to each waiting request as a 500, the worker keeps serving
                for r in batch:
                    r.result.set_exception(e)
                continue
            for r in batch:
                r.result.set_result([h[: r.topk] for h in hits[: len(r.queries)]])
                hits = hits[len(r.queries) :]

    def close(self) -> None:
        self.queue.put(None)


def parse_retrieve(body: bytes) -> tuple[list[str], int, bool]:
    req = http_app.json_object(body)
    queries = req.get("queries")
    if not isinstance(queries, list) or not queries or not all(isinstance(q, str) for q in queries):
        raise BadRequest("'queries' must be a non-empty list of strings", "queries")
    if len(queries) > MAX_QUERIES:
        raise BadRequest(f"at most {MAX_QUERIES} queries per request, got {len(queries)}", "queries")
    topk = req.get("topk", 3)
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= MAX_TOPK:
        raise BadRequest(f"topk must be an integer in [1, {MAX_TOPK}], got {topk!r}", "topk")
    scores = req.get("return_scores", False)
    if not isinstance(scores, bool):
        raise BadRequest("return_scores must be a boolean", "return_scores")
    return queries, topk, scores


class RetrieveRequest(BaseModel):
    """Search-R1's `/retrieve` body (documented at /docs; checked by `parse_retrieve`)."""

    queries: list[str] = Field(description=f"the queries, 1 to {MAX_QUERIES}")
    topk: int = Field(3, ge=1, le=MAX_TOPK, description="passages per query")
    return_scores: bool = Field(False, description="each hit as {document, score}")


def make_retrieval_server(search: WikiSearch, host: str = "127.0.0.1", port: int = 8001, max_queue: int = 64,
                          max_batch: int = 64, api_key: str | None = None) -> HTTPServer:  # fmt: skip
    """With `api_key`, POST /retrieve needs `Authorization: Bearer KEY` (GET /health does not)."""
    service = RetrievalService(search, max_queue, max_batch)
    app = http_app.json_app("fireact retriever", api_key, http_app.OPEN_ROUTES)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "retriever": search.retriever.name, "passages": len(search.retriever.store)}

    @app.post("/retrieve", openapi_extra=http_app.request_schema(RetrieveRequest))
    async def retrieve(request: Request) -> JSONResponse:
        queries, topk, scores = parse_retrieve(await http_app.read_body(request, MAX_BODY))
        try:
            future = service.submit(queries, topk)
        except queue.Full:
            return error_response(503, "the retrieval queue is full; retry shortly", headers={"Retry-After": "1"})
        try:
            hits = await asyncio.wrap_future(future)
        except Exception as e:
            return error_response(500, f"retrieval failed: {type(e).__name__}: {e}")
        return JSONResponse({"result": [[_entry(p, s, scores) for p, s in per] for per in hits]})

    return HTTPServer(app, host, port, service)


def _entry(passage: Any, score: float, with_score: bool) -> dict[str, Any]:
    doc = {"id": passage.id, "contents": passage.contents()}
    return {"document": doc, "score": score} if with_score else doc
