"""`fireact mask-audit`: trained / masked runs of the rendered examples, as JSON lines and highlighted."""

from __future__ import annotations

import json
import sys

import pytest
from cli_runner import run_cli

from fireact.cli import main
from fireact.data.fireact_format import read_any
from fireact.data.prompt_style import PromptStyle, trained_text


@pytest.mark.parametrize("fmt,protocol", [("chat", "react"), ("alpaca", "react"), ("chat", "tool-calls")])
def test_json_lines(data_dir, smollm2_dir, fmt, protocol):
    from transformers import AutoTokenizer

    data = data_dir / "finetune" / "gpt_format" / "hotpotqa_multimethod.jsonl"
    cmd = [sys.executable, "-m", "fireact", "mask-audit", "--data", str(data), "--model", smollm2_dir]
    out = run_cli([*cmd, "--format", fmt, "--protocol", protocol, "--n", "4", "--cutoff", "100000", "--json"])
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    for row, traj in zip(rows, read_any(data)[:4]):
        text, spans = PromptStyle(fmt, protocol=protocol).render(traj, tok)
        assert "".join(row["trained"]) == trained_text(text, spans)
        assert all("Observation" not in s and "<tool_response>" not in s for s in row["trained"])
        assert protocol == "react" or all("<tool_call>" in s for s in row["trained"])  # the calls are trained
        assert any(traj.question[:30] in s for s in row["masked"])
        assert 0 < row["n_trained"] < row["n_tokens"] == len(tok(text, add_special_tokens=fmt == "alpaca")["input_ids"])
        assert len(row["trained"]) == len(traj.turns)  # one run per agent turn: observations split them


def test_highlighted_output(data_dir, smollm2_dir, capsys):
    data = data_dir / "finetune" / "gpt_format" / "hotpotqa.jsonl"
    assert main(["mask-audit", "--data", str(data), "--model", smollm2_dir, "--n", "2", "--cutoff", "64"]) == 0
    out = capsys.readouterr().out
    assert "example 0:" in out and "example 1:" in out and "cut from" in out and "Thought:" in out


def test_bad_input_is_one_clear_error(tmp_path, smollm2_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["mask-audit", "--data", str(bad), "--model", smollm2_dir]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fireact mask-audit: error:") and str(bad) in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("fmt", ["chat", "alpaca"])
def test_unmasked_observations_train_everything_after_the_question(data_dir, smollm2_dir, fmt, capsys):
    """`--no-mask-observations` (the DataModule's mask_observations: false, how FireAct's released
    runs trained): one trained run from the first thought to the end, observations inside, the
    question and prompt never; the same examples' masked audit trains a strict subset."""
    data = data_dir / "finetune" / "gpt_format" / "hotpotqa.jsonl"
    argv = ["mask-audit", "--data", str(data), "--model", smollm2_dir, "--format", fmt, "--n", "3"]
    argv += ["--cutoff", "100000", "--json"]
    assert main(argv) == 0
    masked = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main([*argv, "--no-mask-observations"]) == 0
    unmasked = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for m, u, traj in zip(masked, unmasked, read_any(data)[:3]):
        (trained,) = u["trained"]
        assert trained.lstrip().startswith("Thought") and traj.question[:30] in u["masked"][0]
        observed = [t.observation for t in traj.turns if t.observation]
        assert observed and all(o[:40] in trained for o in observed)
        assert all(s in trained for s in m["trained"]) and u["n_trained"] > m["n_trained"]
        assert u["n_tokens"] == m["n_tokens"]
