"""Servers that check who calls: each route without a key, with a wrong key and with the right one,
through the real openai client and fireact's own retrieval client; a non-loopback bind without a key
refuses to start; the key is never echoed."""

from __future__ import annotations

import http.client
import json
import threading

import openai
import pytest
import torch
from wiki_corpus import write_corpus

from fireact.cli import main
from fireact.errors import FireactError
from fireact.lm.hf import HFLM
from fireact.lm.openai import OpenAILM
from fireact.serve.http_app import check_bind
from fireact.serve.retriever import make_retrieval_server
from fireact.serve.server import make_server
from fireact.tools.http_retriever import HTTPRetriever
from fireact.tools.wiki import WikiSearch

KEY = "fk-test-0123456789"


def start(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def stop(server):
    server.shutdown()
    server.server_close()
    server.service.close()


def raw(port: int, method: str, path: str, key: str | None = None, body: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    conn.request(method, path, json.dumps(body).encode() if body is not None else None, headers)
    r = conn.getresponse()
    return r.status, r.read()


@pytest.fixture(scope="module")
def completions(tiny_model_dir):
    server = make_server(HFLM(tiny_model_dir, dtype=torch.float32), port=0, model_name="tiny", api_key=KEY)
    port = start(server)
    yield port
    stop(server)


def test_completions_routes_need_the_key(completions):
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    for method, path, body in (("GET", "/v1/models", None), ("POST", "/v1/chat/completions", chat)):
        for key in (None, "wrong-key", KEY[:-1]):
            status, data = raw(completions, method, path, key, body)
            assert status == 401, (path, key)
            error = json.loads(data)["error"]
            assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
            assert KEY.encode() not in data
        assert raw(completions, method, path, KEY, body)[0] == 200
    assert raw(completions, "GET", "/health")[0] == 200  # as vLLM: health needs no key


def test_the_real_openai_client_with_and_without_the_key(completions, monkeypatch):
    url = f"http://127.0.0.1:{completions}/v1"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
    ok = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0)
    assert [m.id for m in ok.models.list().data] == ["tiny"]
    # fireact's openai backend sends $FIREACT_API_KEY to a server that is not OpenAI's, not the OpenAI key
    monkeypatch.setenv("FIREACT_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-users-openai-key")
    (c,) = OpenAILM("tiny", base_url=url, max_retries=0).complete([[{"role": "user", "content": "hi"}]], [], 2)
    assert c.error is None


@pytest.fixture
def retrieval(tmp_path, monkeypatch):
    monkeypatch.setenv("FIREACT_INDEX_DIR", str(tmp_path / "indexes"))
    server = make_retrieval_server(WikiSearch(write_corpus(tmp_path / "c.jsonl")), port=0, api_key=KEY)
    port = start(server)
    yield port
    stop(server)


def test_retrieve_needs_the_key_and_the_client_sends_it(retrieval, monkeypatch):
    body = {"queries": ["Ed Wood"], "topk": 1}
    assert raw(retrieval, "POST", "/retrieve", None, body)[0] == 401
    assert raw(retrieval, "POST", "/retrieve", "nope", body)[0] == 401
    assert raw(retrieval, "POST", "/retrieve", KEY, body)[0] == 200
    assert raw(retrieval, "GET", "/health")[0] == 200
    url = f"http://127.0.0.1:{retrieval}/retrieve"
    monkeypatch.delenv("FIREACT_API_KEY", raising=False)
    with pytest.raises(FireactError, match="rejected the API key \\(HTTP 401\\): set \\$FIREACT_API_KEY") as e:
        HTTPRetriever(url)
    assert KEY not in str(e.value)
    monkeypatch.setenv("FIREACT_API_KEY", KEY)
    assert HTTPRetriever(url)("Ed Wood").startswith("Ed Wood: ")


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.7", "::", "my-host.example"])
def test_a_non_loopback_bind_needs_a_key(host, capsys, monkeypatch):
    monkeypatch.delenv("FIREACT_API_KEY", raising=False)
    assert main(["retriever", "serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert f"refusing to serve on {host} without an API key" in err and "--allow-unauthenticated" in err
    check_bind(host, KEY, False)  # with a key, or on purpose, it starts
    check_bind(host, None, True)
    for loopback in ("127.0.0.1", "localhost", "::1"):
        check_bind(loopback, None, False)
