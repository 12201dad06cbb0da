"""`fireact serve`'s endpoint: concurrent requests share the engine, OpenAI-style errors, a bounded
queue, streaming; through the real openai client where a client would use it."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from fireact.lm.hf import HFLM
from fireact.rollout.engine import ContinuousBatcher
from fireact.serve.server import make_server

QUESTIONS = [f"Question {i}: who wrote book number {i}?" for i in range(8)]


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    return HFLM(tiny_model_dir, dtype=torch.float32)


def serve(lm, **kw):
    server = make_server(lm, port=0, model_name="tiny", **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def stop(server):
    server.shutdown()
    server.server_close()
    server.service.close()


def post(server, body: bytes | dict) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", "/v1/chat/completions", data, {"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"{}"), r.headers  # names case-insensitive


def test_concurrent_requests_share_the_batch_and_match_one_at_a_time(tiny_lm):
    import openai

    server, url = serve(tiny_lm, slots=8)
    try:
        client = openai.OpenAI(base_url=url, api_key="dummy", max_retries=0)

        def ask(q):
            r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": q}],
                                               max_tokens=12, temperature=0)  # fmt: skip
            return r.choices[0].message.content, r.usage.completion_tokens

        with ThreadPoolExecutor(8) as pool:
            served = list(pool.map(ask, QUESTIONS))
        assert server.service.job.peak_in_flight > 1  # decoded together, not one after another
        for q, (text, n) in zip(QUESTIONS, served):
            (ref,) = tiny_lm.complete([[{"role": "user", "content": q}]], [], 12, 0.0)
            assert (text, n) == (ref.text, ref.completion_tokens)
    finally:
        stop(server)


def test_streaming_gives_the_same_text(tiny_lm):
    import openai

    server, url = serve(tiny_lm, slots=4)
    try:
        client = openai.OpenAI(base_url=url, api_key="dummy", max_retries=0)
        kw = {"model": "tiny", "messages": [{"role": "user", "content": QUESTIONS[0]}], "max_tokens": 16,
              "temperature": 0}  # fmt: skip
        whole = client.chat.completions.create(**kw).choices[0].message.content
        chunks = list(client.chat.completions.create(**kw, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole
        assert len(chunks) > 3 and chunks[-1].choices[0].finish_reason in ("stop", "length")
    finally:
        stop(server)


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b"{not json", None, "not valid JSON"),
        ({"model": "tiny"}, "messages", "non-empty list"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role", "must be one of"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages[0]", "string or a list of text parts"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0]",
            "text parts",
        ),  # fmt: skip
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens", "[1, 64]"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 65}, "max_tokens", "[1, 64]"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "temperature", "[0, 2]"),
        ({"messages": [{"role": "user", "content": "hi"}], "stop": [1]}, "stop", "up to 4"),
        ({"messages": [{"role": "user", "content": "word " * 300}]}, "messages", "exceed the model's context"),
    ],
)
def test_bad_requests_get_400_with_an_openai_error_body(tiny_lm, body, param, words):
    server, _ = serve(tiny_lm, slots=1, max_tokens_limit=64, max_context=256)
    try:
        status, reply, _ = post(server, body)
        assert status == 400, reply
        err = reply["error"]
        assert err["type"] == "invalid_request_error" and err["param"] == param and words in err["message"]
        ok, reply, _ = post(server, {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                                     "max_tokens": 3})  # fmt: skip
        assert ok == 200 and reply["choices"][0]["message"]["role"] == "assistant"  # still serving
    finally:
        stop(server)


def test_a_full_queue_answers_503_at_once_and_nothing_else_fails(tiny_lm):
    server, _ = serve(tiny_lm, slots=1, max_queue=1)
    try:
        body = {"messages": [{"role": "user", "content": "Tell a long story."}], "max_tokens": 48, "temperature": 0}
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda _: post(server, body), range(6)))
        codes = sorted(status for status, _, _ in replies)
        assert 503 in codes and set(codes) <= {200, 503} and codes.count(200) >= 2, codes
        busy = next((reply, headers) for status, reply, headers in replies if status == 503)
        assert busy[0]["error"]["code"] == "overloaded" and busy[1]["Retry-After"] == "1"
    finally:
        stop(server)


def test_a_failed_decode_step_fails_its_requests_and_the_server_goes_on(tiny_lm, monkeypatch):
    server, _ = serve(tiny_lm, slots=2)
    forward = ContinuousBatcher._forward
    calls = [0]

    def flaky(self, slots, keep=None):
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("injected fault")
        return forward(self, slots, keep)

    monkeypatch.setattr(ContinuousBatcher, "_forward", flaky)
    try:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        status, reply, _ = post(server, body)
        assert status == 500 and "injected fault" in reply["error"]["message"]
        status, reply, _ = post(server, body)
        assert status == 200 and reply["usage"]["completion_tokens"] > 0
    finally:
        stop(server)
