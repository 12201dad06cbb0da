"""The OpenAI backend with the real openai client against a local server that injects faults."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fireact.agent.config import RolloutConfig
from fireact.agent.lm import OpenAILM, price
from fireact.agent.rollout import run_rollouts
from fireact.data.tasks import Example, get_task


class _FaultServer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    faults: list[str] = []
    seen: list[dict] = []
    reply = "Thought: easy\nAction: finish[Paris]"

    def log_message(self, *a):
        pass

    def _json(self, code, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on a slow response: expected here

    def _post(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.seen.append({"body": body, "auth": self.headers.get("Authorization")})
        fault = cls.faults.pop(0) if cls.faults else "ok"
        if fault == "429":
            self._json(429, {"error": {"message": "rate limited"}}, [("retry-after-ms", "10")])
        elif fault == "500":
            self._json(500, {"error": {"message": "boom"}}, [("retry-after-ms", "10")])
        elif fault == "drop":
            self.close_connection = True
            self.connection.shutdown(2)  # no response at all
        else:
            if fault == "slow":
                time.sleep(1.5)
            self._json(
                200,
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": cls.reply}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
                },
            )


@pytest.fixture
def fault_server():
    _FaultServer.faults, _FaultServer.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FaultServer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", _FaultServer
    server.shutdown()
    server.server_close()


def test_retries_through_429_500_and_dropped_connection(fault_server):
    url, srv = fault_server
    srv.faults = ["429", "500", "drop"]
    lm = OpenAILM("gpt-4", base_url=url, api_key="sk-testkey-abcdefgh", max_retries=4, timeout=5)
    (c,) = lm.complete([[{"role": "user", "content": "Q?"}]], ["\nObservation"], 50)
    assert c.error is None and c.text == "Thought: easy\nAction: finish[Paris]"
    assert len(srv.seen) == 4 and srv.seen[-1]["auth"] == "Bearer sk-testkey-abcdefgh"
    assert srv.seen[-1]["body"]["stop"] == ["\nObservation"] and srv.seen[-1]["body"]["max_tokens"] == 50
    assert (c.prompt_tokens, c.completion_tokens) == (100, 10)
    assert c.cost_usd == pytest.approx(price("gpt-4", 100, 10)) == pytest.approx(0.0036)


def test_slow_response_times_out_and_ends_episode_with_error(fault_server, tmp_path):
    url, srv = fault_server
    srv.faults = ["slow", "slow", "slow"]
    key = "sk-secretsecret-0123456789"
    lm = OpenAILM("gpt-4", base_url=url, api_key=key, max_retries=1, timeout=0.4, concurrency=2)
    task = get_task("hotpotqa")
    examples = [Example("1", "Capital of France?", "Paris")]
    start = time.monotonic()
    (t,) = run_rollouts(lm, lambda q: "x", task, examples, RolloutConfig(method="react"))
    assert time.monotonic() - start < 5
    assert t.end_reason == "error" and "Timeout" in t.meta["error"]
    assert key not in t.to_json() and len(srv.seen) == 2  # one try + one retry


def test_concurrent_episodes_and_token_accounting(fault_server):
    url, srv = fault_server
    lm = OpenAILM("gpt-3.5-turbo", base_url=url, api_key="k", concurrency=3, requests_per_minute=6000)
    task = get_task("hotpotqa")
    examples = [Example(str(i), f"Capital {i}?", "Paris") for i in range(6)]
    done = []
    trajs = run_rollouts(lm, lambda q: "x", task, examples, on_done=done.append)
    assert [t.id for t in trajs] == [str(i) for i in range(6)] and len(done) == 6
    assert all(t.reward == 1.0 and t.meta["prompt_tokens"] == 100 and t.meta["cost_usd"] > 0 for t in trajs)
    assert trajs[0].meta["lm"] == "openai:gpt-3.5-turbo"
