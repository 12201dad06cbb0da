"""Search tools: the offline snapshot (exact match, then BM25), SerpAPI with a record/replay cache,
and the noise wrappers of the paper's robustness study. A tool sees only the query string."""

from __future__ import annotations

import json
import os
import random
import re
import threading
from pathlib import Path
from typing import Protocol

from fireact.data.errors import FireactError
from fireact.data.paths import not_utf8, unreadable
from fireact.data.retry import RETRY_STATUS, HTTPStatusError, with_retries
from fireact.data.secrets import redact
from fireact.data.tasks import Example

NONE_OBSERVATION = "None"


class ToolError(RuntimeError):
    """A tool could not answer (e.g. a replay cache miss offline): ends the episode with `error`."""


class SearchTool(Protocol):
    """A tool may also set `blocking_io = True` (it waits on the network): the rollout engine then
    calls it on a thread so one slow search does not stall the other episodes."""

    name: str

    def __call__(self, query: str) -> str: ...


def normalize_query(q: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", q.lower()).split())


class SnapshotSearch:
    """Search over cached Google snippets (query, snippet, source): exact normalised query, then BM25.

    `k` > 1 returns the top k BM25 snippets joined by " ... " when the query is not cached as is: more
    recall for paraphrased queries than one Google snippet gives (the paper's tool; the default).
    """

    name = "snapshot"

    def __init__(self, path: str | os.PathLike, k: int = 1):
        if k < 1:
            raise FireactError(f"snapshot search k must be >= 1, got {k}")
        self.k = k
        path = Path(path)
        if not path.is_file():
            raise FireactError(f"no search snapshot at {path}: run `fireact data download`")
        self.queries: list[str] = []
        self.snippets: list[str] = []
        try:
            with path.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        q, s = str(row["query"]), str(row["snippet"])
                    except (json.JSONDecodeError, KeyError, TypeError) as e:
                        raise FireactError(f"{path}:{lineno}: not a snapshot record {{query, snippet}} ({e})") from None
                    self.queries.append(q)
                    self.snippets.append(s)
        except UnicodeDecodeError:
            raise not_utf8(path) from None
        except OSError as e:
            raise unreadable(path, e, "search snapshot") from None
        if not self.queries:
            raise FireactError(f"{path}: the search snapshot is empty")
        self.exact = {}
        for q, s in zip(self.queries, self.snippets):
            self.exact.setdefault(normalize_query(q), s)
        self._normalized: str | None = None  # all snippets, normalised once for `holds`
        self._retriever = None  # BM25, built at the first search not cached as is
        self._lock = threading.Lock()  # rollouts call tools from several threads

    @property
    def retriever(self):
        import bm25s

        with self._lock:
            if self._retriever is None:
                corpus = [f"{q} {s}" for q, s in zip(self.queries, self.snippets)]
                retriever = bm25s.BM25()
                retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
                self._retriever = retriever
        return self._retriever

    def cached(self, query: str) -> bool:
        """Whether the query is answered by a recorded Google result (cached as is), not by BM25."""
        return normalize_query(query) in self.exact

    def holds(self, answer: str) -> bool:
        """Whether the answer (SQuAD-normalised, whole words) is in some snippet: findable offline."""
        from fireact.data.scoring import normalize_answer

        if self._normalized is None:
            self._normalized = "\n".join(f" {normalize_answer(s)} " for s in self.snippets)
        gold = normalize_answer(answer)
        return bool(gold) and f" {gold} " in self._normalized

    def __call__(self, query: str) -> str:
        import bm25s

        key = normalize_query(query)
        if not key:
            return NONE_OBSERVATION
        if key in self.exact:
            return self.exact[key]
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:  # only stopwords
            return NONE_OBSERVATION
        k = min(self.k, len(self.snippets))
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        hits = [self.snippets[int(d)] for d, sc in zip(docs[0], scores[0]) if float(sc) > 0.0]
        return " ... ".join(hits) if hits else NONE_OBSERVATION


def snapshot_coverage(tool: SnapshotSearch, examples: list[Example]) -> dict[str, float]:
    """How far offline search can take a free-form task: the share of questions whose gold answer
    (SQuAD-normalised, whole words) is in some snapshot snippet at all, and in what the tool returns
    for the question itself. An upper bound on EM with this tool, and a lower one on the searches
    an agent needs."""
    from fireact.data.scoring import normalize_answer

    scored = [e for e in examples if normalize_answer(e.answer or "")]
    anywhere = sum(tool.holds(e.answer) for e in scored)
    for_question = sum(f" {normalize_answer(e.answer)} " in f" {normalize_answer(tool(e.question))} " for e in scored)
    n = max(len(scored), 1)
    return {"questions": len(scored), "answer_in_snapshot": anywhere / n, "answer_for_the_question": for_question / n}


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
                        except (json.JSONDecodeError, KeyError, TypeError):
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


class NoisySearch:
    """The robustness study: with probability p, answer "None" (nothing) or a random earlier observation."""

    def __init__(self, tool: SearchTool, mode: str, p: float = 0.5, seed: int = 0):
        if mode not in ("nothing", "random"):
            raise FireactError(f"unknown noise {mode!r}; choose none, nothing or random")
        if not 0.0 <= p <= 1.0:
            raise FireactError(f"noise probability must be in [0, 1], got {p}")
        self.tool, self.mode, self.p = tool, mode, p
        self.name = f"{tool.name}+{mode}"
        self.blocking_io = False  # inline even over SerpAPI: the noise draws follow the call order
        self.rng = random.Random(seed)
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, query: str) -> str:
        obs = self.tool(query)
        with self._lock:
            noisy = self.rng.random() < self.p
            if noisy and self.mode == "nothing":
                out = NONE_OBSERVATION
            elif noisy and self.seen:
                out = self.rng.choice(self.seen)
            else:
                out = obs
            self.seen.append(obs)
        return out


def make_tool(
    name: str,
    data_dir: Path | None = None,
    noise: str = "none",
    noise_p: float = 0.5,
    seed: int = 0,
    cache_path: str | os.PathLike | None = None,
    search_k: int = 1,
) -> SearchTool:
    """`snapshot` (offline default; `search_k` snippets per search) or `serpapi`, optionally noisy."""
    from fireact.data.paths import default_cache_dir, snapshot_path

    if name == "snapshot":
        if data_dir is None:
            raise FireactError("the snapshot tool needs a data dir")
        tool: SearchTool = SnapshotSearch(snapshot_path(data_dir), search_k)
    elif name == "serpapi":
        tool = SerpAPISearch(
            cache_path or default_cache_dir() / "serpapi.jsonl", backend=os.environ.get("FIREACT_SERPAPI_BACKEND")
        )
    else:
        raise FireactError(f"unknown tool {name!r}; choose snapshot or serpapi")
    if noise != "none":
        tool = NoisySearch(tool, noise, noise_p, seed)
    return tool
