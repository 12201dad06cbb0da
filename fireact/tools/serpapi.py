"""Google search through SerpAPI, with a record/replay cache."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from fireact.data.paths import not_utf8, unreadable
from fireact.errors import FireactError
from fireact.retry import RETRY_STATUS, HTTPStatusError, with_retries
from fireact.secrets import redact
from fireact.tools.base import NONE_OBSERVATION, ToolError


def serpapi_observation(result: dict) -> str:
    """The paper's rule: answer_box answer / snippet / highlighted words, else the first organic snippet."""
    box = result.get("answer_box") or {}
    if isinstance(box, list):
        box = box[0] if box else {}
    if box.get("answer"):
        return str(box["answer"])
    if box.get("snippet"):
        return str(box["snippet"])
    words = box.get("snippet_highlighted_words")
    if words:
        return str(words[0])
    organic = result.get("organic_results") or []
    if organic and organic[0].get("snippet"):
        return str(organic[0]["snippet"])
    return NONE_OBSERVATION


class SerpAPISearch:
    """Google search through SerpAPI (google-search-results), with a persistent query -> observation
    cache: a paid search is never repeated, and with no key the cache replays offline."""

    name = "serpapi"
    blocking_io = True  # a live search waits 1-3 s on the network: the engine runs it off the decode path
    timeout = 30.0  # seconds per request

    def __init__(self, cache_path: str | os.PathLike, api_key: str | None = None, backend: str | None = None):
        self.api_key = api_key if api_key is not None else os.environ.get("SERPAPI_API_KEY")
        self.backend = backend
        self.cache_path = Path(cache_path)
        self.cache: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.cache_path.exists():
            try:
                with self.cache_path.open(encoding="utf-8") as f:
                    for line in f:
                        try:
                            row = json.loads(line)
                            self.cache[row["query"]] = row["observation"]
                        except (json.JSONDecodeError, RecursionError, KeyError, TypeError):
                            continue  # a torn last line from a killed run
            except UnicodeDecodeError:
                raise not_utf8(self.cache_path) from None
            except OSError as e:
                raise unreadable(self.cache_path, e, "SerpAPI cache file") from None
        self.calls = 0  # live (paid) searches made by this process

    def _search(self, query: str) -> str:
        from serpapi import GoogleSearch

        search = GoogleSearch({"q": query, "api_key": self.api_key, "engine": "google", "output": "json"})
        if self.backend:
            search.BACKEND = self.backend  # instance attribute: a stand-in server, never global state
        search.timeout = self.timeout

        def fetch() -> dict:
            response = search.get_response()
            if response.status_code in RETRY_STATUS:
                raise HTTPStatusError(response.status_code, response.text[:200])
            try:
                return response.json()
            except ValueError:
                raise FireactError(
                    f"serpapi search: the HTTP {response.status_code} reply is not JSON (starts {response.text[:60]!r})"
                ) from None

        try:  # retried here, so one flaky request costs a few seconds, not the episode
            result = with_retries(fetch, "serpapi search", secrets=(self.api_key,))
        except FireactError as e:
            raise ToolError(str(e)) from None
        if "error" in result and not result.get("organic_results") and not result.get("answer_box"):
            raise ToolError(f"serpapi error: {redact(str(result['error']), (self.api_key,))[:200]}")
        return serpapi_observation(result)

    def __call__(self, query: str) -> str:
        with self._lock:
            if query in self.cache:
                return self.cache[query]
        if not self.api_key:
            raise ToolError("serpapi: query not in the replay cache and SERPAPI_API_KEY is not set")
        obs = self._search(query)
        with self._lock:
            self.calls += 1
            self.cache[query] = obs
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"query": query, "observation": obs}, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return obs
