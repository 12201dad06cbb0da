"""Search tools for real: the snapshot (exact + bm25s), SerpAPI against a local stand-in, noise."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from faults import refused_url, send

from fireact import retry
from fireact.data.paths import snapshot_path
from fireact.errors import FireactError
from fireact.tools.base import ToolError
from fireact.tools.noise import NoisySearch
from fireact.tools.serpapi import SerpAPISearch, serpapi_observation
from fireact.tools.snapshot import SnapshotSearch


@pytest.fixture(scope="module")
def snapshot(data_dir):
    return SnapshotSearch(snapshot_path(data_dir))


def test_snapshot_exact_then_bm25(snapshot):
    q, s = snapshot.queries[1], snapshot.snippets[1]
    assert snapshot(q) == snapshot.exact[" ".join(q.lower().split())] or snapshot(q) == s
    assert snapshot(q.upper() + " ?") == snapshot(q)  # normalised exact match
    # A reworded query (not in the snapshot) still finds the snippet through BM25.
    hit = snapshot("Malcolm Smith Super Bowl MVP award")
    assert "Malcolm" in hit or "Smith" in hit
    assert snapshot("") == "None" and snapshot("the of and") == "None"


def test_snapshot_top_k(tmp_path):

    path = tmp_path / "s.jsonl"
    rows = [
        ("river nile length", "The Nile is 6,650 km long."),
        ("nile delta", "The Nile delta is in Egypt."),
        ("paris", "Paris is in France."),
    ]
    path.write_text("".join(json.dumps({"query": q, "snippet": s}) + "\n" for q, s in rows))
    one, two = SnapshotSearch(path), SnapshotSearch(path, k=2)
    assert two("nile delta") == one("nile delta") == "The Nile delta is in Egypt."  # a cached query: its own snippet
    assert one("Nile river in Africa") in two("Nile river in Africa").split(" ... ")
    assert two("Nile river in Africa").count(" ... ") == 1 and "Paris" not in two("Nile river in Africa")
    assert SnapshotSearch(path, k=5)("Paris France") == "Paris is in France."  # only positive BM25 scores
    with pytest.raises(FireactError, match="k must be >= 1"):
        SnapshotSearch(path, k=0)


def test_snapshot_coverage(tmp_path, data_dir, capsys):
    """Gold answers found as whole normalised words: in any snippet, and in the search for the question."""
    from fireact.cli import main
    from fireact.data.tasks import Example
    from fireact.tools.snapshot import snapshot_coverage

    path = tmp_path / "s.jsonl"
    rows = [("nile length", "The Nile is 6,650 km long."), ("capital of france", "Paris is the capital.")]
    path.write_text("".join(json.dumps({"query": q, "snippet": s}) + "\n" for q, s in rows))
    examples = [
        Example("1", "How long is the Nile river?", "6,650 km"),  # found by its own search
        Example("2", "Who founded Rome?", "Paris"),  # in a snippet, not in the search for it
        Example("3", "Where is the Louvre?", "Par"),  # a word piece is not the answer
        Example("4", "Unanswered?", None),
    ]
    cov = snapshot_coverage(SnapshotSearch(path), examples)
    assert cov == {"questions": 3, "answer_in_snapshot": 2 / 3, "answer_for_the_question": 1 / 3}
    assert main(["data", "coverage", "--task", "bamboogle", "--data-dir", str(data_dir)]) == 0
    assert "bamboogle/test" in capsys.readouterr().out
    assert main(["data", "coverage", "--task", "mmlu", "--data-dir", str(data_dir)]) == 2
    assert "yes/no or a letter" in capsys.readouterr().err


def test_answerable_selection(data_dir):
    """`answerable` keeps the seeded order of the questions the snapshot can answer, then offset/n."""
    from fireact.rollout.config import RolloutConfig

    snapshot = SnapshotSearch(snapshot_path(data_dir))
    every = RolloutConfig().examples("hotpotqa", data_dir)
    chosen = RolloutConfig(n=10, offset=5, answerable=True).examples("hotpotqa", data_dir)
    findable = [e for e in every if snapshot.holds(e.answer)]
    assert 0 < len(findable) < len(every)
    assert [e.id for e in chosen] == [e.id for e in findable[5:15]]
    with pytest.raises(FireactError, match="yes/no or a letter"):
        RolloutConfig(answerable=True).examples("strategyqa", data_dir)


def test_snapshot_bad_file(tmp_path):

    bad = tmp_path / "s.jsonl"
    bad.write_text('{"query": "a"}\n')
    with pytest.raises(FireactError, match="s.jsonl:1"):
        SnapshotSearch(bad)


def test_serpapi_rule():
    assert serpapi_observation({"answer_box": {"answer": "A", "snippet": "S"}}) == "A"
    assert serpapi_observation({"answer_box": {"snippet": "S"}}) == "S"
    assert serpapi_observation({"answer_box": {"snippet_highlighted_words": ["W"]}}) == "W"
    assert serpapi_observation({"organic_results": [{"snippet": "O"}]}) == "O"
    assert serpapi_observation({}) == "None"


class _SerpStandIn(BaseHTTPRequestHandler):
    calls: list[dict] = []
    faults: list[str | None] = []  # one per request, see faults.py

    def log_message(self, *a):
        pass

    def do_GET(self):
        params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        type(self).calls.append(params)
        q = params.get("q", "")
        body = (
            {"organic_results": [{"snippet": f"snippet about {q}"}]}
            if "box" not in q
            else {"answer_box": {"answer": "42"}}
        )
        send(self, 200, json.dumps(body).encode(), self.faults.pop(0) if self.faults else None)


@pytest.fixture
def serp_server(monkeypatch):
    monkeypatch.setattr(retry, "DELAYS", (0.0, 0.0, 0.0))
    monkeypatch.setattr(SerpAPISearch, "timeout", 0.5)
    _SerpStandIn.calls, _SerpStandIn.faults = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SerpStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _SerpStandIn.calls
    server.shutdown()
    server.server_close()


def test_serpapi_record_replay(serp_server, tmp_path):
    url, calls = serp_server
    cache = tmp_path / "serp.jsonl"
    key = "secret-key-123"
    tool = SerpAPISearch(cache, api_key=key, backend=url)
    assert tool("who wrote x") == "snippet about who wrote x"
    assert tool("answer box please") == "42"
    assert tool("who wrote x") == "snippet about who wrote x"
    assert len(calls) == 2 and calls[0]["api_key"] == key and calls[0]["engine"] == "google"
    assert tool.calls == 2
    assert key not in cache.read_text()
    # Offline replay: no key, no server; cached queries answer, others fail the episode, not the run.
    replay = SerpAPISearch(cache, api_key="", backend="http://127.0.0.1:9")
    assert replay("answer box please") == "42"
    with pytest.raises(ToolError, match="not in the replay cache"):
        replay("never asked")
    assert len(calls) == 2


def test_serpapi_retries_transient_faults(serp_server, tmp_path):
    url, calls = serp_server
    _SerpStandIn.faults[:] = ["429", "slow", "cut"]
    tool = SerpAPISearch(tmp_path / "serp.jsonl", api_key="secret-key-123", backend=url)
    assert tool("who wrote x") == "snippet about who wrote x"
    assert len(calls) == 4 and tool.calls == 1


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        (["503"] * 4, "serpapi search failed after 4 attempts: HTTPStatusError: HTTP 503"),
        (["html"], "serpapi search: the HTTP 200 reply is not JSON (starts '<html>"),
        (["refused"], "serpapi search failed after 4 attempts: ConnectionError"),
    ],
)
def test_serpapi_failure_fails_the_search_not_the_run(serp_server, tmp_path, faults, expected):
    """A search that cannot be answered raises ToolError (the episode ends with an error, and
    `fireact generate` retries it on the next run); nothing is cached, the key is never in the message."""
    url, _ = serp_server
    _SerpStandIn.faults[:] = faults
    key = "secret-key-123"
    cache = tmp_path / "serp.jsonl"
    tool = SerpAPISearch(cache, api_key=key, backend=refused_url() if faults == ["refused"] else url)
    with pytest.raises(ToolError) as e:
        tool("who wrote x")
    assert str(e.value).startswith(expected) and key not in str(e.value), str(e.value)
    assert not cache.exists() and tool.calls == 0


def test_noise_wrappers_seeded():
    base = lambda q: f"obs:{q}"  # noqa: E731
    base.name = "base"  # type: ignore[attr-defined]
    nothing = NoisySearch(base, "nothing", p=0.5, seed=3)
    outs = [nothing(str(i)) for i in range(200)]
    none_rate = outs.count("None") / len(outs)
    assert 0.35 < none_rate < 0.65
    again = NoisySearch(base, "nothing", p=0.5, seed=3)
    assert outs == [again(str(i)) for i in range(200)]
    rnd = NoisySearch(base, "random", p=1.0, seed=0)
    first = rnd("a")  # nothing seen yet: the real observation
    later = [rnd(str(i)) for i in range(20)]
    assert first == "obs:a"
    assert all(o.startswith("obs:") for o in later) and any(o != f"obs:{i}" for i, o in enumerate(later))


def test_snapshot_rebuilt_from_release_matches_shared_snapshot(data_dir, tmp_path):
    from fireact.data.snapshot import build_snapshot

    path, n = build_snapshot(data_dir, tmp_path / "snap.jsonl")
    built = {r["query"]: r["snippet"] for r in map(json.loads, path.read_text().splitlines())}
    shared = {r["query"]: r["snippet"] for r in map(json.loads, snapshot_path(data_dir).read_text().splitlines())}
    assert n == len(built) > 4000
    same = sum(built.get(q) == s for q, s in shared.items())
    assert same / len(shared) > 0.98  # the shared file came from the same release
    assert SnapshotSearch(path)("Malcolm Smith Most Valuable Player").startswith("Smith was named")
