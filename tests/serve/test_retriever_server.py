"""`fireact retriever serve` over real HTTP: Search-R1's schema, batched answers, JSON errors that
never stop the server; the HTTP client against it, against a minimal server written here from the
documented schema (no scores, a transient 503), and against nothing; the real agent searching through it."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from wiki_corpus import write_corpus

from fireact import retry
from fireact.data.tasks import Example
from fireact.errors import FireactError
from fireact.lm.base import Completion
from fireact.rollout.config import RolloutConfig
from fireact.rollout.runners import run_rollouts
from fireact.serve.retriever import make_retrieval_server
from fireact.tools.http_retriever import HTTPRetriever
from fireact.tools.wiki import WikiSearch


def serve(server: ThreadingHTTPServer) -> str:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


@pytest.fixture
def retrieval(tmp_path, monkeypatch):
    monkeypatch.setenv("FIREACT_INDEX_DIR", str(tmp_path / "indexes"))
    server = make_retrieval_server(WikiSearch(write_corpus(tmp_path / "c.jsonl")), port=0)
    yield serve(server)
    server.shutdown()
    server.server_close()
    server.service.close()


def post(url: str, body: bytes | dict, method: str = "POST") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_retrieve_follows_search_r1s_schema(retrieval):
    status, reply = post(f"{retrieval}/retrieve", {"queries": ["Ed Wood", "Scott Derrickson"], "topk": 2,
                                                   "return_scores": True})  # fmt: skip
    assert status == 200 and len(reply["result"]) == 2
    first = reply["result"][0]
    assert len(first) == 2 and first[0]["document"]["contents"].startswith('"Ed Wood"\nEdward Davis Wood Jr.')
    assert set(first[0]["document"]) == {"id", "contents"} and isinstance(first[0]["score"], float)
    status, reply = post(f"{retrieval}/retrieve", {"queries": ["Ed Wood"], "topk": 1})  # no scores: documents
    assert status == 200 and set(reply["result"][0][0]) == {"id", "contents"}
    with urllib.request.urlopen(f"{retrieval}/health", timeout=5) as r:
        assert json.loads(r.read()) == {"status": "ok", "retriever": "bm25", "passages": 4}


def test_concurrent_requests_are_answered_each_with_its_own_results(retrieval):
    queries = ["Ed Wood", "Scott Derrickson", "Doctor Strange (2016 film)", "Ed Wood (film)"] * 4
    out: dict[int, str] = {}

    def one(i: int) -> None:
        _, reply = post(f"{retrieval}/retrieve", {"queries": [queries[i]], "topk": 1})
        out[i] = reply["result"][0][0]["contents"].split("\n")[0].strip('"')

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [out[i] for i in range(len(queries))] == queries


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[" * 100_000, None),  # deep nesting: a 400, not a dropped connection
        (b"[1]", None),
        ({"queries": []}, "queries"),
        ({"queries": "Ed Wood"}, "queries"),
        ({"queries": [1]}, "queries"),
        ({"queries": ["a"] * 257}, "queries"),
        ({"queries": ["a"], "topk": 0}, "topk"),
        ({"queries": ["a"], "topk": 101}, "topk"),
        ({"queries": ["a"], "topk": True}, "topk"),
        ({"queries": ["a"], "return_scores": "yes"}, "return_scores"),
    ],
)
def test_bad_requests_get_a_json_400_and_the_server_keeps_serving(retrieval, body, param):
    status, reply = post(f"{retrieval}/retrieve", body)
    assert status == 400 and reply["error"]["type"] == "invalid_request_error" and reply["error"]["param"] == param
    assert post(f"{retrieval}/retrieve", {"queries": ["Ed Wood"]})[0] == 200


def test_unknown_routes_and_methods_are_json_errors(retrieval):
    assert post(f"{retrieval}/search", {"queries": ["a"]})[0] == 404
    status, reply = post(f"{retrieval}/retrieve", {"queries": ["a"]}, method="PUT")
    assert status == 405 and "PUT" in reply["error"]["message"]


def test_client_reads_fireacts_server(retrieval):
    tool = HTTPRetriever(f"{retrieval}/retrieve", k=1)
    assert tool("Ed Wood").startswith("Ed Wood: Edward Davis Wood Jr.")
    assert tool("  ") == "None"
    assert HTTPRetriever(f"{retrieval}/retrieve", k=2)("Scott Derrickson").count(" ... ") == 1


class MinimalRetriever(BaseHTTPRequestHandler):
    """Written from the documented schema only: documents without scores; the first request of a
    test gets a transient 503."""

    calls = 0

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        if type(self).calls == 2:  # the first search after the connection check
            self.send_response(503)
            self.end_headers()
            return
        docs = [[{"id": "7", "contents": f'"Paris"\nParis is the capital of France. ({q})'}] for q in body["queries"]]
        data = json.dumps({"result": docs}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_client_against_a_minimal_server_retries_a_transient_failure(monkeypatch):
    monkeypatch.setattr(retry, "DELAYS", (0.01, 0.01, 0.01))
    MinimalRetriever.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), MinimalRetriever)
    url = serve(server)
    try:
        assert (
            HTTPRetriever(f"{url}/retrieve")("capital of France")
            == "Paris: Paris is the capital of France. (capital of France)"
        )
        assert MinimalRetriever.calls == 3  # check, 503, retried
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_is_not_there_is_one_clear_error():
    with pytest.raises(
        FireactError, match="retrieval server http://127.0.0.1:9/retrieve is not answering.*fireact retriever serve"
    ):
        HTTPRetriever("http://127.0.0.1:9/retrieve")
    with pytest.raises(FireactError, match="starts with http"):
        HTTPRetriever("ftp://example.org/retrieve")


class ReadingAgent:
    """An LM that searches the question's subject, then answers with the birth date it read: the
    real episode rules, runners and tool threads decide everything else."""

    name, batched, continuous, concurrency, prompt_style = "reader", False, False, 2, None

    def reset_cache(self) -> None:
        pass

    def complete(self, prompts, stop, max_tokens, temperature=0.0, stop_after_action=False):
        import re

        text = json.dumps(prompts[0])
        born = re.search(r"born ([A-Z][a-z]+ \d+, \d{4})", text)
        if born:
            return [Completion(f"Thought: I read it.\nAction: finish[{born.group(1)}]")]
        subject = re.search(r"When was (.+?) born", text).group(1)
        return [Completion(f"Thought: search the subject.\nAction: search[{subject}]")]


def test_the_agent_searches_through_the_server(retrieval, data_dir):
    cfg = RolloutConfig(tool=f"{retrieval}/retrieve", max_turns=4)
    tool = cfg.make_tool(data_dir)
    assert tool.blocking_io
    examples = [Example("0", "When was Scott Derrickson born?", "July 16, 1966", "hotpotqa")]
    (traj,) = run_rollouts(ReadingAgent(), tool, examples, cfg)
    assert traj.turns[0].action == "search[Scott Derrickson]"
    assert traj.turns[0].observation.startswith("Scott Derrickson: Scott Derrickson (born July 16, 1966)")
    assert traj.prediction == "July 16, 1966" and traj.em == 1.0
