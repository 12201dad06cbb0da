"""`fireact retriever serve`: a local retriever behind Search-R1's `POST /retrieve`, so fireact's
agents and other stacks (Search-R1, ReSearch, verl tool agents) can share one offline world.

Requests are queued (bounded: a full queue is 503 at once) and a worker answers all waiting
queries in one batched search. `GET /health` says what is served.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from fireact.serve.json_http import BadRequest, JSONHandler, parse_json
from fireact.tools.wiki import WikiSearch

MAX_QUERIES, MAX_TOPK = 256, 100  # per request


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
    req = parse_json(body)
    if not isinstance(req, dict):
        raise BadRequest("the body must be a JSON object")
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


def make_retrieval_server(search: WikiSearch, host: str = "127.0.0.1", port: int = 8001, max_queue: int = 64,
                          max_batch: int = 64, api_key: str | None = None) -> ThreadingHTTPServer:  # fmt: skip
    """With `api_key`, POST /retrieve needs `Authorization: Bearer KEY` (GET /health does not)."""
    service = RetrievalService(search, max_queue, max_batch)

    class Handler(JSONHandler):
        def do_GET(self) -> None:
            if not self.authorized():
                return
            if self.path.rstrip("/") != "/health":
                self.send_json_error(404, f"no route GET {self.path}; POST /retrieve or GET /health")
                return
            self.send_json(200, {"status": "ok", "retriever": search.retriever.name,
                                 "passages": len(search.retriever.store)})  # fmt: skip

        def do_POST(self) -> None:
            if not self.authorized():
                return
            if self.path.rstrip("/") != "/retrieve":
                self.send_json_error(404, f"no route POST {self.path}; POST /retrieve")
                return
            try:
                queries, topk, scores = parse_retrieve(self.read_body())
            except BadRequest as e:
                self.send_json_error(413 if e.code == "413" else 400, str(e), e.param)
                return
            try:
                future = service.submit(queries, topk)
            except queue.Full:
                self.send_json_error(503, "the retrieval queue is full; retry shortly", headers={"Retry-After": "1"})
                return
            try:
                hits = future.result()
            except Exception as e:
                self.send_json_error(500, f"retrieval failed: {type(e).__name__}: {e}")
                return
            self.send_json(200, {"result": [[_entry(p, s, scores) for p, s in per] for per in hits]})

    Handler.api_key = api_key
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.service = service  # closed by the caller with the server
    return server


def _entry(passage: Any, score: float, with_score: bool) -> dict[str, Any]:
    doc = {"id": passage.id, "contents": passage.contents()}
    return {"document": doc, "score": score} if with_score else doc
