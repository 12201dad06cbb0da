"""The recording gateway through the real openai client: a local model's episodes recorded token-exact,
a teacher's behind `--upstream` as text and calls, episodes closed by reward, never-closed ones kept
unscored, and every bad input refused with a status and a message naming it."""

from __future__ import annotations

import json
import threading

import openai
import pytest
import torch
from chat_standin import ChatStandIn
from faults import refused_url

from fireact.data.recordings import RECORD_FILE, read_recording
from fireact.data.token_log import training_rows
from fireact.errors import FireactError
from fireact.gateway import episode_url, finish_episode
from fireact.gateway.recorder import Recorder
from fireact.gateway.routes import make_gateway
from fireact.gateway.upstream import UpstreamChat
from fireact.lm.hf import HFLM
from fireact.serve.server import served_model

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look a topic up.",
          "parameters": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}}}]  # fmt: skip
SYSTEM = {"role": "system", "content": "You are a careful researcher."}
QUESTION = {"role": "user", "content": "How long is the Nile?"}


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    return HFLM(tiny_model_dir, dtype=torch.float32)


def start(server) -> str:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def stop(server) -> None:
    server.shutdown()
    server.server_close()
    server.close_service()


def client(url: str, episode: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=episode_url(url, episode) if episode else f"{url}/v1", api_key="x", max_retries=0)


def test_a_local_models_episodes_are_recorded_token_exact(tiny_lm, tmp_path):
    server = make_gateway(served_model(tiny_lm, model_name="tiny", slots=4), Recorder(tmp_path / "rec", "tiny"), port=0)
    url = start(server)
    try:
        ask = {"model": "tiny", "max_tokens": 6, "temperature": 1.0, "tools": TOOLS}
        c = client(url, "ep-1")
        first = c.chat.completions.create(messages=[SYSTEM, QUESTION], seed=1, **ask).choices[0].message
        again = [SYSTEM, QUESTION, first.model_dump(exclude_none=True), {"role": "user", "content": "Go on."}]
        c.chat.completions.create(messages=again, seed=2, **ask)
        streamed = client(url, "ep-2").chat.completions.create(messages=[QUESTION], stream=True, seed=3, **ask)
        assert list(streamed)[-1].choices[0].finish_reason in ("stop", "length", "tool_calls")
        client(url, None).chat.completions.create(messages=[QUESTION], **ask)  # plain /v1: not recorded
        assert finish_episode(episode_url(url, "ep-1"), 1.0, {"id": "q1"})["calls"] == 2
    finally:
        stop(server)  # ep-2 was never closed: kept, unscored
    raw = [json.loads(line) for line in (tmp_path / "rec" / RECORD_FILE).read_text().splitlines()]
    assert [(r["episode"], r["closed"], r["reward"], len(r["calls"])) for r in raw] == [
        ("ep-1", True, 1.0, 2), ("ep-2", False, None, 1)]  # fmt: skip
    recording = read_recording(tmp_path / "rec")
    one, two = sorted(recording.trajectories, key=lambda t: t.meta["episode"])
    assert (one.reward, one.id, one.tools, one.instructions, one.question) == (1.0, "q1", TOOLS, SYSTEM["content"],
                                                                              QUESTION["content"])  # fmt: skip
    assert two.reward is None and two.meta["unscored"] and two.score == 0.0
    # the trained tokens are the served ones, prompts untrained; each call's prompt is its rendering
    for t, calls in ((one, raw[0]["calls"]), (two, raw[1]["calls"])):
        rows = training_rows(t.token_turns)
        trained = [int(i) for r in rows for i in r.input_ids[r.trained]]
        assert trained == [i for call in calls for i in call["token_ids"]] and trained
        for call in calls:
            assert len(call["logprobs"]) == len(call["token_ids"]) and call["fmt"] == "chat"
    assert recording.counts["closed"] == 1 and recording.counts["unscored"] == 1


def tool_teacher(body: dict) -> dict | str:
    """A scripted teacher: look the topic up (two calls at once the first time), then answer."""
    if not any(m["role"] == "tool" for m in body["messages"]):
        calls = [{"id": f"call_{k}", "type": "function",
                  "function": {"name": "lookup", "arguments": json.dumps({"topic": t})}}
                 for k, t in enumerate(("Nile", "Amazon"))]  # fmt: skip
        return {"role": "assistant", "content": "I look both up.", "tool_calls": calls}
    return "The Nile is 6,650 km long."


def test_a_teacher_behind_upstream_is_recorded_as_text_and_calls_and_a_dead_upstream_is_502(tmp_path):
    with ChatStandIn(tool_teacher) as teacher:
        server = make_gateway(UpstreamChat(teacher.url, "gpt-teacher"), Recorder(tmp_path / "rec", "teacher"), port=0)
        url = start(server)
        try:
            c = client(url, "t-1")
            answer = c.chat.completions.create(model="any", messages=[QUESTION], tools=TOOLS).choices[0].message
            assert [tc.function.name for tc in answer.tool_calls] == ["lookup", "lookup"]
            results = [
                {
                    "role": "tool",
                    "tool_call_id": tc.id,
                    "content": f"{json.loads(tc.function.arguments)['topic']}: long",
                }
                for tc in reversed(answer.tool_calls)
            ]  # fmt: skip  (answered out of order: matched by id)
            final = c.chat.completions.create(model="any", messages=[QUESTION, answer.model_dump(exclude_none=True),
                                                                     *results], tools=TOOLS)  # fmt: skip
            assert final.choices[0].message.content.startswith("The Nile")
            assert teacher.seen[0]["body"]["model"] == "gpt-teacher"
            finish_episode(episode_url(url, "t-1"), 1.0)
        finally:
            stop(server)
    (t,) = read_recording(tmp_path / "rec").trajectories
    assert t.token_turns is None and t.meta["protocol"] == "tool-calls"
    assert [(s.tool, s.arguments, s.observation) for s in t.turns] == [
        ("lookup", {"topic": "Nile"}, "Nile: long"), ("lookup", {"topic": "Amazon"}, "Amazon: long"),
        (None, None, None)]  # fmt: skip
    assert t.turns[0].thought == "I look both up." and t.prediction == "The Nile is 6,650 km long."

    dead = refused_url()
    down = make_gateway(UpstreamChat(dead, timeout=2), Recorder(tmp_path / "rec2", "teacher"), port=0)
    url = start(down)
    try:
        with pytest.raises(openai.InternalServerError) as e:
            client(url, "t-2").chat.completions.create(model="m", messages=[QUESTION])
        assert e.value.status_code == 502 and dead in str(e.value)
    finally:
        stop(down)
    assert (tmp_path / "rec2" / RECORD_FILE).read_text() == ""  # a failed call is not part of any episode


def test_an_upstream_failing_past_its_retries_is_502_and_the_clients_retry_gets_through(tmp_path):
    with ChatStandIn("An answer.") as teacher:
        teacher.faults = ["500"] * 3  # the gateway's client tries 3 times, then answers 502
        server = make_gateway(UpstreamChat(teacher.url), Recorder(tmp_path / "rec", "t"), port=0)
        url = start(server)
        try:
            retrying = openai.OpenAI(base_url=episode_url(url, "r-1"), api_key="x", max_retries=1)
            assert retrying.chat.completions.create(model="m", messages=[QUESTION]).choices[0].message.content
            finish_episode(episode_url(url, "r-1"), 1.0)
        finally:
            stop(server)
    assert len(teacher.seen) == 4
    assert [len(r["calls"]) for r in map(json.loads, (tmp_path / "rec" / RECORD_FILE).read_text().splitlines())] == [1]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/episodes/a%2Fb/reward", {"reward": 1}, 400, "not valid"),
        ("/episodes/..x/reward", {"reward": 1}, 400, "not valid"),
        ("/episodes/" + "a" * 129 + "/reward", {"reward": 1}, 400, "not valid"),
        ("/episodes/e-open/reward", {"reward": "high"}, 400, "reward"),
        ("/episodes/e-open/reward", {"reward": None}, 400, "reward"),
        ("/episodes/e-open/reward", {"reward": 1, "extra": 2}, 400, "extra"),
        ("/episodes/e-never/reward", {"reward": 1}, 404, "e-never"),
        ("/episodes/e-done/reward", {"reward": 1}, 409, "already closed"),
        ("/episodes/e-done/v1/chat/completions", {"messages": [QUESTION]}, 409, "already closed"),
    ],
)
def test_bad_episode_requests_are_refused_naming_what(path, body, status, words, tmp_path):
    import httpx

    with ChatStandIn("An answer.") as teacher:
        server = make_gateway(UpstreamChat(teacher.url), Recorder(tmp_path / "rec", "t"), port=0)
        url = start(server)
        try:
            for episode in ("e-open", "e-done"):
                client(url, episode).chat.completions.create(model="m", messages=[QUESTION])
            finish_episode(episode_url(url, "e-done"), 0.0)
            r = httpx.post(url + path, json=body)
            assert r.status_code == status and words in r.json()["error"]["message"], r.text
            assert finish_episode(episode_url(url, "e-open"), 0.5)["status"] == "closed"  # still serving
        finally:
            stop(server)


def test_a_record_dir_that_cannot_be_written_is_refused_at_start(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FireactError, match="is a file, not a directory"):
        Recorder(tmp_path / "file", "m")
    with pytest.raises(FireactError, match="cannot write there"):
        Recorder(tmp_path / "file" / "sub", "m")


def test_a_torn_line_from_a_crash_is_reported_and_skipped_and_the_next_episode_is_whole(tmp_path, capsys):
    rec = tmp_path / "rec"
    rec.mkdir()
    whole = {"episode": "old", "closed": True, "reward": 1.0, "info": None, "model": "m", "calls": [
        {"messages": [QUESTION], "tools": None, "message": {"role": "assistant", "content": "6,650 km"}}]}  # fmt: skip
    (rec / RECORD_FILE).write_text(json.dumps(whole) + "\n" + json.dumps(whole)[:50])
    recorder = Recorder(rec, "m")
    recorder.add(
        "new", {"messages": [QUESTION], "tools": []}, {"message": {"role": "assistant", "content": "ok"}}, size=100
    )
    recorder.close("new", 0.0)
    recorder.close_all()
    recording = read_recording(rec)
    assert [t.meta["episode"] for t in recording.trajectories] == ["old", "new"]
    assert recording.counts["torn"] == 1 and f"{RECORD_FILE}:2: not a whole JSON line" in capsys.readouterr().err
    with pytest.raises(Exception, match="already closed"):
        Recorder(rec, "m").close("old", 1.0)  # a restarted gateway knows what it wrote
