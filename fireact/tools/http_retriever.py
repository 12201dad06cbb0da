"""Any Search-R1-style retrieval server as the agent's search tool (`--tool http://HOST:PORT/retrieve`):
fireact's own `fireact retriever serve`, or a user's e5 / wiki-18 server on a GPU machine.

The API (Search-R1's `retrieval_server.py`): POST {"queries": [...], "topk": k, "return_scores": bool}
-> {"result": [[{"document": {"id", "contents": "\\"Title\\"\\ntext"}, "score"}, ...], ...]}; without
scores each hit is the document itself.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from fireact.errors import FireactError
from fireact.retry import HTTPStatusError, describe, with_retries
from fireact.tools.base import NONE_OBSERVATION, ToolError, normalize_query
from fireact.tools.corpus import Passage, observation, parse_passage
from fireact.tools.wiki import MAX_CHARS

API_KEY_VAR = "FIREACT_API_KEY"  # sent as a Bearer token when set, as to every fireact server


class HTTPRetriever:
    name = "http"
    blocking_io = True  # the engine calls it on a tool thread: a slow server never stalls decoding

    def __init__(self, url: str, k: int = 1, max_chars: int = MAX_CHARS, timeout: float = 10.0, check: bool = True):
        if not url.startswith(("http://", "https://")):
            raise FireactError(f"--tool {url!r}: a retrieval server URL starts with http:// or https://")
        self.url, self.k, self.max_chars, self.timeout = url, k, max_chars, timeout
        self.api_key = os.environ.get(API_KEY_VAR)
        if check:  # fail before any episode starts, not as N episode errors after the model loaded
            try:  # once, without the retries: a server that is not there should say so at once
                self._post({"queries": ["fireact connection check"], "topk": 1})
            except HTTPStatusError as e:
                if e.status == 401:
                    raise FireactError(f"retrieval server {url} rejected the API key (HTTP 401): set ${API_KEY_VAR} "
                                       "to the key it was started with") from None  # fmt: skip
                raise FireactError(f"retrieval server {url} answered {e}") from None
            except Exception as e:
                raise FireactError(f"retrieval server {url} is not answering ({describe(e, (self.api_key,))}): is it "
                                   "running (`fireact retriever serve --corpus PATH --port N`)?") from None  # fmt: skip

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, json.dumps(payload).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:
            raise HTTPStatusError(e.code, e.read()[:200].decode("utf-8", "replace")) from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FireactError(f"the reply is not JSON (starts {body[:60]!r})") from None

    def retrieve(self, queries: list[str], k: int) -> list[list[tuple[Passage, float]]]:
        payload = {"queries": queries, "topk": k, "return_scores": True}
        reply = with_retries(lambda: self._post(payload), f"retrieval at {self.url}", secrets=(self.api_key,))
        result = reply.get("result") if isinstance(reply, dict) else None
        if not isinstance(result, list) or len(result) != len(queries):
            raise FireactError(f"retrieval at {self.url}: expected {{'result': [one list per query]}}")
        return [[_hit(h, self.url) for h in hits] for hits in result]

    def __call__(self, query: str) -> str:
        if not normalize_query(query):
            return NONE_OBSERVATION
        try:
            (hits,) = self.retrieve([query], self.k)
        except FireactError as e:
            raise ToolError(str(e)) from None
        return observation([p for p, _ in hits[: self.k]], self.max_chars)


def _hit(hit: object, url: str) -> tuple[Passage, float]:
    """One result entry, with or without its score."""
    if isinstance(hit, dict) and isinstance(hit.get("document"), dict):
        doc, score = hit["document"], hit.get("score", 0.0)
    else:
        doc, score = hit, 0.0
    try:
        return parse_passage(json.dumps(doc), url, 0), float(score)
    except (FireactError, TypeError, ValueError):
        raise FireactError(f"retrieval at {url}: a hit is not a document {{id, contents}}: {str(hit)[:80]}") from None
