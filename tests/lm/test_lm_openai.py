"""The OpenAI backend with the real openai client against a local server that injects faults."""

from __future__ import annotations

import time

import pytest
from chat_standin import ChatStandIn
from faults import refused_url

from fireact.data.tasks import Example
from fireact.lm.openai import OpenAILM, price
from fireact.rollout.config import RolloutConfig
from fireact.rollout.runners import run_rollouts


@pytest.fixture
def fault_server():
    with ChatStandIn() as srv:
        yield srv.url, srv


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
    examples = [Example("1", "Capital of France?", "Paris", "hotpotqa")]
    start = time.monotonic()
    (t,) = run_rollouts(lm, lambda q: "x", examples, RolloutConfig(method="react"))
    assert time.monotonic() - start < 5
    assert t.end_reason == "error" and "Timeout" in t.meta["error"]
    assert key not in t.to_json() and len(srv.seen) == 2  # one try + one retry


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        (["cut"], None),  # half a body, retried
        (["html"], "the reply is not a chat completion (starts '<html>"),  # a proxy's page: not retried
        ("refused", "APIConnectionError: Connection error. (http://127.0.0.1:"),
    ],
)
def test_cut_body_non_json_and_unreachable_server(fault_server, faults, error):
    url, srv = fault_server
    key = "sk-testkey-abcdefgh"
    if faults == "refused":
        url = refused_url() + "/v1"
    else:
        srv.faults = faults
    c = OpenAILM("gpt-4", base_url=url, api_key=key, max_retries=1, timeout=2).complete(["Q"], ["\nObservation"], 20)[0]
    assert c.error == error if error is None else error in c.error and key not in c.error, c.error
    assert c.text == ("Thought: easy\nAction: finish[Paris]" if error is None else "")


def test_concurrent_episodes_and_token_accounting(fault_server):
    url, srv = fault_server
    lm = OpenAILM("gpt-3.5-turbo", base_url=url, api_key="k", concurrency=3, requests_per_minute=6000)
    examples = [Example(str(i), f"Capital {i}?", "Paris", "hotpotqa") for i in range(6)]
    done = []
    trajs = run_rollouts(lm, lambda q: "x", examples, on_done=done.append)
    assert [t.id for t in trajs] == [str(i) for i in range(6)] and len(done) == 6
    assert all(t.em == 1.0 and t.meta["prompt_tokens"] == 100 and t.meta["cost_usd"] > 0 for t in trajs)
    assert trajs[0].meta["lm"] == "openai:gpt-3.5-turbo"
