"""The HTTP edges every fireact server shares (FastAPI on uvicorn): a body over the limit is 413 before
it is read, a client that trickles its request head or body is cut at the deadline, unknown routes
and methods are JSON errors, deep JSON is a 400, the OpenAPI page is served; and the recording
gateway as a real process: a kill -9 loses no closed episode and leaves no half line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import httpx
import pytest
from chat_standin import ChatStandIn

from fireact.data.recordings import RECORD_FILE
from fireact.gateway import episode_url, finish_episode
from fireact.gateway.recorder import Recorder
from fireact.gateway.routes import make_gateway
from fireact.gateway.upstream import UpstreamChat
from fireact.serve import http_app

QUESTION = {"role": "user", "content": "How long is the Nile?"}


@pytest.fixture
def gateway(tmp_path):
    with ChatStandIn("6,650 km.") as teacher:
        server = make_gateway(UpstreamChat(teacher.url), Recorder(tmp_path / "rec", "t"), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()
        server.server_close()
        server.close_service()


def test_bodies_routes_and_json_edges_are_json_errors(gateway):
    _, url = gateway
    chat = f"{url}/v1/chat/completions"
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # 5 MB announced, 10 bytes sent
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5242880\r\n\r\n" + b"x" * 10)  # fmt: skip
        head = b"".join(iter(lambda: s.recv(65536), b""))  # until the server closes it
    assert b" 413 " in head.split(b"\r\n")[0] and b"at most" in head
    deep = httpx.post(chat, content=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]["message"]
    assert httpx.get(f"{url}/nowhere").json()["error"]["message"] == "no route GET /nowhere"
    put = httpx.put(chat, json={})
    assert put.status_code == 405 and "PUT" in put.json()["error"]["message"]
    assert httpx.get(f"{url}/docs").status_code == 200
    schema = httpx.get(f"{url}/openapi.json").json()
    assert {"/v1/chat/completions", "/episodes/{episode}/reward"} <= set(schema["paths"])
    body = schema["paths"]["/episodes/{episode}/reward"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["reward"]["type"] == "number"
    assert httpx.post(chat, json={"messages": [QUESTION]}).status_code == 200  # still serving


def test_a_client_that_trickles_its_request_is_cut_at_the_deadline(gateway, monkeypatch):
    _, url = gateway
    monkeypatch.setattr(http_app, "REQUEST_SECONDS", 1.0)
    port = int(url.rsplit(":", 1)[1])
    head = socket.create_connection(("127.0.0.1", port))
    head.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # the head never ends
    body = socket.create_connection(("127.0.0.1", port))
    body.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{")  # fmt: skip
    started = time.monotonic()
    for s in (head, body):
        s.settimeout(10)
        data = b""
        while chunk := s.recv(4096):  # until the server closes it
            data += chunk
        s.close()
        if s is body:
            assert b" 408 " in data.split(b"\r\n")[0] and b"took over" in data
    assert time.monotonic() - started < 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_gateway_killed_with_sigkill_loses_no_closed_episode(tmp_path):
    record = tmp_path / "rec"
    with ChatStandIn("6,650 km.") as teacher:

        def start() -> tuple[subprocess.Popen, str]:
            port = free_port()
            cmd = [sys.executable, "-m", "fireact", "serve", "--upstream", teacher.url, "--record", str(record),
                   "--port", str(port)]  # fmt: skip
            proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=1)
                    return proc, url
                except OSError:
                    time.sleep(0.1)
            proc.kill()
            raise AssertionError(proc.stderr.read())

        proc, url = start()
        import openai

        for episode in ("closed-1", "open-2"):
            client = openai.OpenAI(base_url=episode_url(url, episode), api_key="x", max_retries=0)
            client.chat.completions.create(model="m", messages=[QUESTION])
        finish_episode(episode_url(url, "closed-1"), 1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        text = (record / RECORD_FILE).read_text()
        assert text.endswith("\n") and [json.loads(line)["episode"] for line in text.splitlines()] == ["closed-1"]
        proc, url = start()  # the restarted gateway knows what it wrote
        try:
            again = httpx.post(f"{url}/episodes/closed-1/reward", json={"reward": 1.0})
            assert again.status_code == 409
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_a_record_dir_that_is_a_file_stops_serve_at_start(tmp_path, capsys):
    from fireact.cli import main

    (tmp_path / "f").write_text("x")
    assert main(["serve", "--upstream", "http://127.0.0.1:9/v1", "--record", str(tmp_path / "f")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert main(["serve", "--upstream", "http://127.0.0.1:9/v1"]) == 2
    assert "give --record DIR too" in capsys.readouterr().err


def test_hostile_requests_get_a_4xx_naming_the_field(gateway, monkeypatch):
    _, url = gateway
    chat = f"{url}/v1/chat/completions"
    plain = httpx.post(chat, content=json.dumps({"messages": [QUESTION]}), headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["error"]["param"] == "Content-Type"  # no CORS-free drive-by
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": {"topic": "Nile"}}}
    bad = {
        "tools[0].function.parameters": {"messages": [QUESTION], "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "string"}}}]},
        "messages[1].tool_calls[0].function.arguments": {"messages": [QUESTION, {"role": "assistant", "tool_calls": [call]}]},
        "messages[1].tool_call_id": {"messages": [QUESTION, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
    }  # fmt: skip
    for param, body in bad.items():
        r = httpx.post(chat, json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # refused at once, not read until close
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: -1\r\n\r\n{}")  # fmt: skip
        assert b" 400 " in s.recv(65536).split(b"\r\n")[0]


def test_a_key_with_a_trailing_space_still_matches(monkeypatch):
    from fireact.serve.http_app import resolve_api_key

    monkeypatch.setenv("FIREACT_API_KEY", "fk-secret \n")
    assert resolve_api_key(None) == "fk-secret"
    monkeypatch.setenv("FIREACT_API_KEY", "  ")
    assert resolve_api_key(None) is None
