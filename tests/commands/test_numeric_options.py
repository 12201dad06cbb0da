"""Numbers that make no sense are refused at parse time with the option named (a negative epoch
count or price used to give a negative cost; zero rounds of expert iteration did nothing)."""

from __future__ import annotations

import pytest
import yaml

from fireact.cli import main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["openai-finetune", "--file", "t.jsonl", "--epochs", "-1"], "argument --epochs: must be >= 1, got -1"),
        (["openai-finetune", "--file", "t.jsonl", "--price-per-million", "-3"], "--price-per-million: must be > 0"),
        (["openai-finetune", "--file", "t.jsonl", "--max-cost-usd", "-5"], "--max-cost-usd: must be >= 0"),
        (["openai-finetune", "--file", "t.jsonl", "--poll-seconds", "0"], "--poll-seconds: must be > 0"),
        (["expert-iteration", "--config", "c.yaml", "--rounds", "0"], "argument --rounds: must be >= 1, got 0"),
        (["report", "a.jsonl", "--expected", "0"], "--expected: must be >= 1"),
        (["serve", "--slots", "0"], "--slots: must be >= 1"),
        (["serve", "--port", "70000"], "--port: must be >= 0 and <= 65535"),
        (["eval", "--out", "e.jsonl", "--threads", "two"], "--threads: expected an integer, got 'two'"),
        (["data", "coverage", "--search-k", "0"], "--search-k: must be >= 1"),
    ],
)
def test_nonsense_numbers_are_refused_with_the_option_named(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("key", ["rounds", "checkpoint_every"])
def test_zero_counts_in_an_expert_iteration_config(key, tmp_path, capsys):
    (tmp_path / "sft.yaml").write_text("{}\n")
    config = tmp_path / "ei.yaml"
    config.write_text(
        yaml.safe_dump({"train_config": str(tmp_path / "sft.yaml"), "init_adapter": "a", "out": "o", key: 0})
    )
    assert main(["expert-iteration", "--config", str(config)]) == 2
    assert f"{key} must be an integer >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_output_under_a_regular_file_names_the_file(tmp_path, capsys, assets):
    (tmp_path / "notes").write_text("a file, not a folder")
    source = next(assets.glob("*.jsonl"))
    out = tmp_path / "notes" / "sub" / "out.jsonl"
    assert main(["import", str(source), "--out", str(out), "--task", "hotpotqa"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write there: {tmp_path / 'notes'} is a file, not a folder" in err
    assert "NotADirectoryError" not in err
