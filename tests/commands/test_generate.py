"""End to end: `fireact serve` (tiny model) + `fireact generate --lm openai:...` with the real openai
client, killed with SIGKILL midway and resumed: nothing lost, nothing duplicated."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from fireact.cli import main


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fireact",
            "serve",
            "--lm",
            f"hf:{tiny_model_dir}",
            "--port",
            "0",
            "--model-name",
            "tiny",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and url is None:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        m = re.search(r"on (http://127\.0\.0\.1:\d+/v1)", line)
        url = m.group(1) if m else None
    assert url, "fireact serve did not start"
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_serve_speaks_openai(served):
    import openai

    client = openai.OpenAI(base_url=served, api_key="dummy", max_retries=0)
    assert [m.id for m in client.models.list()] == ["tiny"]
    r = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=5, temperature=0, stop=["\n"]
    )
    assert r.choices[0].message.role == "assistant" and "\n" not in r.choices[0].message.content
    assert 0 < r.usage.completion_tokens <= 5 and r.usage.prompt_tokens > 0
    with pytest.raises(openai.BadRequestError, match="n=1"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], n=2)


def _ids(path):
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def test_generate_sigkill_and_resume(served, data_dir, tmp_path):
    out = tmp_path / "gen.jsonl"
    n = 16
    cmd = [
        sys.executable,
        "-m",
        "fireact",
        "generate",
        "--lm",
        "openai:tiny",
        "--base-url",
        served,
        "--task",
        "hotpotqa",
        "--split",
        "dev",
        "--n",
        str(n),
        "--batch-size",
        "1",
        "--max-turns",
        "2",
        "--max-tokens",
        "24",
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
    ]
    env = {**os.environ, "OPENAI_API_KEY": "sk-dummy-not-a-real-key-000"}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    at_kill = _ids(out)
    assert 3 <= len(at_kill) < n, "the run must be killed midway"
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{len(at_kill)} of {n} already done" in r.stderr or "resuming" in r.stderr
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == n and ids[: len(at_kill)] == at_kill
    from fireact.data.tasks import get_task, select

    assert set(ids) == {e.id for e in select(get_task("hotpotqa").load(data_dir, "dev"), n)}
    text = out.read_text()
    assert "sk-dummy" not in text
    rows = [json.loads(x) for x in text.splitlines()]
    assert all(r["meta"]["lm"] == "openai:tiny" and r["meta"]["prompt_tokens"] > 0 for r in rows)
    # A third start has nothing left to do and adds nothing.
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and _ids(out) == ids


def test_generate_only_successful_and_bad_split(served, data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ok.jsonl"
    args = [
        "generate",
        "--lm",
        "openai:tiny",
        "--base-url",
        served,
        "--split",
        "dev",
        "--n",
        "2",
        "--max-turns",
        "1",
        "--max-tokens",
        "8",
        "--only-successful",
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
    ]
    monkeypatch.setenv("OPENAI_API_KEY", "dummy")
    assert main(args) == 0
    # A random tiny model never answers right: nothing kept, but both questions are marked done.
    assert out.read_text() == "" and len(out.with_name("ok.jsonl.attempted").read_text().splitlines()) == 2
    assert main([*args[:5], "--split", "val", *args[7:]]) == 2
    assert "has no split 'val'" in capsys.readouterr().err


def test_failed_episodes_are_not_recorded_and_a_rerun_retries_them(data_dir, tmp_path, capsys, monkeypatch):
    """An episode the backend could not serve (HTTP 500 through every retry) is not marked done: the
    run ends with one line saying so and a rerun plays exactly it. A backend that is down stops the
    run after FAILING_IN_A_ROW failures instead of burning through every question."""
    from chat_standin import ChatStandIn

    from fireact.commands.generate import FAILING_IN_A_ROW
    from fireact.rollout.config import RolloutConfig

    key = "sk-generate-secret-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    out = tmp_path / "gen.jsonl"
    questions = [e.question for e in RolloutConfig(split="dev", n=3).examples("hotpotqa", data_dir)]
    with ChatStandIn() as srv:
        args = ["generate", "--lm", "openai:teacher", "--base-url", srv.url, "--split", "dev", "--n", "3"]
        args += ["--max-turns", "2", "--max-retries", "1", "--batch-size", "2", "--out", str(out)]
        args += ["--data-dir", str(data_dir)]
        srv.failing = {questions[1]}
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "1 hotpotqa episodes failed" in err and "500" in err and key not in err, err
        assert f"2 finished ones are saved in {out}: run the same command again to retry the rest" in err
        saved = [t["question"] for t in map(json.loads, out.read_text().splitlines())]
        assert sorted(saved) == sorted([questions[0], questions[2]])
        srv.failing, srv.seen = set(), []
        assert main(args) == 0
        assert {json.dumps(r["body"]["messages"]).count(questions[1]) > 0 for r in srv.seen} == {True}
        assert sorted(t["question"] for t in map(json.loads, out.read_text().splitlines())) == sorted(questions)

        srv.faults = ["503"] * 1000  # down for good
        srv.seen = []
        many = [a if a != "3" else "40" for a in args]
        assert main([*many[:-4], "--out", str(tmp_path / "down.jsonl"), *many[-2:]]) == 2
        asked = {json.dumps(r["body"]["messages"]) for r in srv.seen}
        assert FAILING_IN_A_ROW <= len(asked) <= FAILING_IN_A_ROW + 2  # + the episodes already in flight
        assert not (tmp_path / "down.jsonl").read_text()
        # eval writes every episode, and says its scores count the failed ones as wrong
        ev = tmp_path / "eval.jsonl"
        assert main(["eval", *args[1:9], "--max-retries", "0", "--out", str(ev), "--data-dir", str(data_dir)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "3 of 3 episodes ended on a backend or tool error" in err and f"all are in {ev}" in err, err
        assert len(ev.read_text().splitlines()) == 3
