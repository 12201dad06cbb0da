"""`fireact openai-finetune`: the paper's GPT-3.5 path (export-data -> hosted fine-tune) through the
real `openai` client against a local stand-in of the files and fine-tuning endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from openai_standin import OpenAIStandIn

from fireact.cli import main
from fireact.hosted.finetune import HostedFinetune

KEY = "sk-standin-0123456789abcdefghij"


@pytest.fixture(scope="module")
def chat_file(data_dir, tmp_path_factory):
    """12 of FireAct's HotpotQA trajectories exported exactly as a user would upload them."""
    out = tmp_path_factory.mktemp("export") / "hotpotqa.jsonl"
    mix = json.dumps({"hotpotqa/react": 12})
    source = "finetune/alpaca_format/hotpotqa.json"
    assert (
        main(
            [
                "export-data",
                "--sources",
                source,
                "--mix",
                mix,
                "--val-size",
                "0",
                "--format",
                "openai",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


@pytest.fixture
def api(monkeypatch):
    with OpenAIStandIn(KEY) as standin:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", standin.url)
        yield standin


def finetune(tmp_path, chat_file, *extra):
    return main(["openai-finetune", "--file", str(chat_file), "--runs-dir", str(tmp_path / "runs"),
                 "--poll-seconds", "0.01", *extra])  # fmt: skip


def records(tmp_path):
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("*.json"))]


def test_dry_run_estimates_and_sends_nothing(api, chat_file, tmp_path, capsys):
    assert finetune(tmp_path, chat_file, "--dry-run", "--epochs", "2") == 0
    err = capsys.readouterr().err
    assert "12 examples" in err and "x 2 epochs" in err and "gpt-4o-mini-2024-07-18: ~$" in err
    assert api.requests == []
    assert finetune(tmp_path, chat_file, "--dry-run") == 0
    assert "x 9 epochs" in capsys.readouterr().err  # auto: 12 examples x 3 < 100 passes -> ceil(100/12)


def test_max_cost_refuses_before_upload(api, chat_file, tmp_path, capsys):
    assert finetune(tmp_path, chat_file, "--max-cost-usd", "0.0001") == 2
    assert "above --max-cost-usd 0.00: not started" in capsys.readouterr().err
    assert finetune(tmp_path, chat_file, "--model", "my-model", "--max-cost-usd", "5") == 2
    assert "no known price for my-model; pass --price-per-million" in capsys.readouterr().err
    assert api.requests == []


def _line(**message):
    return json.dumps({"messages": [{"role": "user", "content": "Q"}, message]})


@pytest.mark.parametrize(
    "bad, expected",
    [
        ("{not json", ":5: not valid JSON"),
        (_line(role="robot", content="x"), ":5: messages[1].role 'robot' is not one of system, user, assistant, tool"),
        (_line(role="tool", content="x"), ":5: messages[1]: a tool message must answer an earlier tool call"),
        (
            _line(
                role="assistant",
                content=None,
                tool_calls=[{"id": "c", "function": {"name": "search", "arguments": "{}"}}],
            ),
            ":5: messages[1].tool_calls[0] must have an id and call a function the example's tools declare",
        ),
        (json.dumps({"messages": [{"role": "user", "content": "Q"}]}), ":5: no assistant message"),
        (_line(role="assistant", content=[{"type": "text", "text": "x"}]), ":5: messages[1].content must be a string"),
        (_line(role="assistant", content="x", weight=2), ":5: messages[1].weight must be 0 or 1"),
        (
            _line(role="assistant", content="word " * 20_000),
            "tokens (estimated), over gpt-3.5-turbo-0125's per-example limit of 16,385",
        ),
        (json.dumps([1, 2]), ":5: an example must be an object with a non-empty `messages` list"),
    ],
    ids=[
        "json",
        "role",
        "tool-unanswered",
        "undeclared-tool",
        "no-assistant",
        "content-parts",
        "weight",
        "too-long",
        "not-an-object",
    ],  # fmt: skip
)
def test_bad_file_is_named_with_its_line_before_any_upload(api, chat_file, tmp_path, capsys, bad, expected):
    lines = chat_file.read_text().splitlines()
    lines[4] = bad
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rc = finetune(tmp_path, path, "--model", "gpt-3.5-turbo-0125")
    err = capsys.readouterr().err
    assert rc == 2 and f"{path}:5: " in err and expected.removeprefix(":5: ") in err and "Traceback" not in err
    assert api.requests == []


def test_tool_call_export_passes_the_same_checks(api, data_dir, tmp_path, capsys):
    """`export-data --protocol tool-calls` writes the tools API's shape (tools, assistant tool_calls,
    tool results), which the upload check accepts and `fireact import` reads back to the same steps."""
    from fireact.data.fireact_format import read_any

    out = tmp_path / "tools.jsonl"
    argv = ["export-data", "--sources", "finetune/alpaca_format/hotpotqa.json", "--mix", '{"hotpotqa/react": 12}']
    assert main([*argv, "--val-size", "0", "--format", "openai", "--protocol", "tool-calls", "--out", str(out)]) == 0
    first = json.loads(out.read_text().splitlines()[0])
    assert [t["function"]["name"] for t in first["tools"]] == ["search", "finish"]
    assert {m["role"] for m in first["messages"]} == {"user", "assistant", "tool"}
    assert finetune(tmp_path, out, "--dry-run") == 0 and "12 examples" in capsys.readouterr().err
    react = tmp_path / "react.jsonl"
    assert main([*argv, "--val-size", "0", "--format", "openai", "--out", str(react)]) == 0
    back, same = read_any(out), read_any(react)
    assert [(t.question, t.turns, t.em, t.method) for t in back] == [
        (t.question, t.turns, t.em, t.method) for t in same
    ]
    bad = tmp_path / "bad.jsonl"
    lines = out.read_text().splitlines()
    lines[2] = lines[2].replace('"arguments": "{', '"arguments": "{{', 1)
    bad.write_text("\n".join(lines) + "\n")
    assert finetune(tmp_path, bad, "--dry-run") == 2
    assert f"{bad}:3: messages[1].tool_calls[0].function.arguments must be a JSON string" in capsys.readouterr().err
    alpaca = [*argv, "--val-size", "0", "--format", "alpaca", "--protocol", "tool-calls", "--out", str(tmp_path / "a")]
    assert main(alpaca) == 2 and "use it with --format openai or hf" in capsys.readouterr().err
    folder = tmp_path / "ds"
    assert main([*argv, "--val-size", "0", "--format", "hf", "--protocol", "tool-calls", "--out", str(folder)]) == 0
    assert [(t.question, t.turns, t.em) for t in read_any(folder)] == [(t.question, t.turns, t.em) for t in same]
    from datasets import load_from_disk

    row = load_from_disk(str(folder))[0]
    assert json.loads(row["tools"]) == first["tools"] and any(m["role"] == "tool" for m in row["messages"])


def test_too_few_examples(api, chat_file, tmp_path, capsys):
    path = tmp_path / "few.jsonl"
    path.write_text("\n".join(chat_file.read_text().splitlines()[:9]) + "\n")
    assert finetune(tmp_path, path) == 2
    assert "9 example(s); the fine-tuning API needs at least 10" in capsys.readouterr().err


def test_run_survives_faults_and_is_paid_once(api, chat_file, tmp_path, capsys):
    """429, 500 and a dropped connection are retried by the client; the job is followed to its model;
    running the same command again (even after losing the record) attaches instead of paying twice."""
    api.faults = [429, 500, "drop", 429]
    assert finetune(tmp_path, chat_file, "--suffix", "fireact", "--epochs", "1", "--seed", "7") == 0
    out, err = capsys.readouterr()
    model = out.strip()
    assert model.startswith("ft:gpt-4o-mini-2024-07-18:fireact:fireact:")
    assert f"fireact eval --lm openai:{model} --task hotpotqa" in err
    assert api.count("POST /v1/files") == 5 and api.count("POST /v1/fine_tuning/jobs") == 1  # 4 faults, then stored
    assert len(api.files) == 1 and len(api.jobs) == 1
    job = next(iter(api.jobs.values()))
    assert (
        job["seed"] == 7
        and job["suffix"] == "fireact"
        and job["method"]["supervised"]["hyperparameters"] == {"n_epochs": 1}
    )
    [rec] = records(tmp_path)
    assert rec["fine_tuned_model"] == model and rec["status"] == "succeeded" and model in rec["eval_command"]
    assert rec["estimate"]["epochs"] == 1 and rec["trained_tokens"] > 0

    assert finetune(tmp_path, chat_file, "--suffix", "fireact", "--epochs", "1", "--seed", "7") == 0
    assert capsys.readouterr().out.strip() == model
    for p in (tmp_path / "runs").glob("*.json"):
        p.unlink()  # the record is lost: the job's metadata still finds it
    assert finetune(tmp_path, chat_file, "--suffix", "fireact", "--epochs", "1", "--seed", "7") == 0
    out, err = capsys.readouterr()
    assert out.strip() == model and len(api.jobs) == 1
    assert KEY not in out + err + (tmp_path / "runs").joinpath(f"{rec['key']}.json").read_text()


def test_failed_job_then_new_job(api, chat_file, tmp_path, capsys):
    api.fail_jobs = True
    assert finetune(tmp_path, chat_file) == 2
    err = capsys.readouterr().err
    assert "failed: The job failed due to an invalid training file" in err and "Traceback" not in err
    assert finetune(tmp_path, chat_file) == 2
    assert "add --new-job to start another (billed again)" in capsys.readouterr().err
    api.fail_jobs = False
    assert finetune(tmp_path, chat_file, "--new-job") == 0
    assert len(api.jobs) == 2 and len(api.files) == 1  # the upload is reused
    assert records(tmp_path)[0]["status"] == "succeeded"


def test_interrupt_detaches_and_cancel_cancels(api, chat_file, tmp_path, capsys, monkeypatch):
    def interrupted(self, job_id, poll_seconds, stop=None):
        raise KeyboardInterrupt
        yield

    with monkeypatch.context() as m:
        m.setattr(HostedFinetune, "follow", interrupted)
        assert finetune(tmp_path, chat_file) == 130
    assert "keeps running (and billing) on the server. Run the same command to re-attach" in capsys.readouterr().err
    assert finetune(tmp_path, chat_file, "--cancel") == 0
    assert next(iter(api.jobs.values()))["status"] == "cancelled" and records(tmp_path)[0]["status"] == "cancelled"
    assert finetune(tmp_path, chat_file) == 2
    assert "cancelled; add --new-job" in capsys.readouterr().err


def test_key_problems(api, chat_file, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    assert finetune(tmp_path, chat_file) == 2
    assert "set OPENAI_API_KEY in the environment" in capsys.readouterr().err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0123456789abcdef")
    assert finetune(tmp_path, chat_file) == 2
    err = capsys.readouterr().err
    assert "rejected OPENAI_API_KEY (401)" in err and "sk-wrong" not in err


def test_sigint_in_a_real_process_then_reattach(api, chat_file, tmp_path, capsys):
    """Ctrl-C on the real CLI detaches; the same command then re-attaches to the same job."""
    api.steps_per_poll = 0  # the job stays running until the interrupt has landed
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": api.url}
    cmd = [sys.executable, "-m", "fireact", "openai-finetune", "--file", str(chat_file),
           "--runs-dir", str(tmp_path / "runs"), "--poll-seconds", "0.05"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(j["status"] == "running" for j in api.jobs.values()) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "detached from job ftjob-000001" in err and "Traceback" not in err
    api.steps_per_poll = 50
    assert finetune(tmp_path, chat_file) == 0
    assert "re-attached to job ftjob-000001" in capsys.readouterr().err
    assert len(api.jobs) == 1 and len(api.files) == 1
