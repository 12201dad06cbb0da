"""`fireact import` and `fireact score`: FireAct's files read back, the paper's numbers re-scored."""

from __future__ import annotations

import json
import sys

import pytest
from cli_runner import run_cli

from fireact.cli import main
from fireact.data.tasks import get_task
from fireact.data.trajectory import Trajectory, Turn, read_trajectories, write_trajectories

TRAJS = "trajs/hotpotqa_dev_0_500_{}.json"
PAPER = {  # Table 2 / 4 of the paper: EM over the 500 selected dev questions
    "llama_models_lora_llama-2-7b-d_1000_0.7_2023-09-19-00-49-36": 0.262,
    "llama_models_lora_llama-2-13b-d_1000_0.7_2023-09-18-13-40-08": 0.344,
    "ft_gpt-3.5-turbo-0613_princeton-nlp__7woQRsdi_0.0_2023-09-21-16-19-51": 0.400,
}


def test_import_of_the_test_assets_without_the_release(assets, tmp_path, capsys, monkeypatch):
    """Both FireAct layouts import to the same trajectories; the reward line is never kept."""
    monkeypatch.setenv("FIREACT_DATA_DIR", str(tmp_path / "no-release"))
    for name in ("fireact_alpaca.json", "fireact_gpt.jsonl"):
        assert (
            main(["import", str(assets / name), "--out", str(tmp_path / f"{name}.out.jsonl"), "--task", "hotpotqa"])
            == 0
        )
    a, g = (read_trajectories(tmp_path / f"{n}.out.jsonl") for n in ("fireact_alpaca.json", "fireact_gpt.jsonl"))
    assert [(r.question, r.turns, r.prediction, r.method) for r in a] == [
        (r.question, r.turns, r.prediction, r.method) for r in g
    ]
    assert [r.method for r in a] == ["react", "cot", "reflexion"] and [r.prediction for r in a] == [
        "Asten",
        "no",
        "Ines Carrow",
    ]
    assert not any("Episode finished" in (t.observation or "") for r in a for t in r.turns)


def test_import_reproduces_the_papers_multimethod_counts(data_dir, tmp_path, capsys):
    out = tmp_path / "mm.jsonl"
    assert (
        main(
            [
                "import",
                str(data_dir / "finetune/alpaca_format/hotpotqa_multimethod.json"),
                "--out",
                str(out),
                "--data-dir",
                str(data_dir),
            ]
        )
        == 0
    )
    records = read_trajectories(out)
    counts = {m: sum(r.method == m for r in records) for m in ("react", "cot", "reflexion")}
    assert counts == {"react": 500, "cot": 187, "reflexion": 47}  # the paper's numbers
    assert {r.task for r in records} == {"hotpotqa"}
    assert not any("Episode finished" in (t.observation or "") for r in records for t in r.turns)
    assert all(r.turns[-1].observation is None and r.prediction for r in records)
    assert "│ hotpotqa │ cot" in capsys.readouterr().out


def test_import_chat_and_alpaca_formats_agree(data_dir, tmp_path):
    for fmt, ext in (("alpaca_format", "json"), ("gpt_format", "jsonl")):
        main(
            [
                "import",
                str(data_dir / f"finetune/{fmt}/hotpotqa.{ext}"),
                "--out",
                str(tmp_path / f"{fmt}.jsonl"),
                "--data-dir",
                str(data_dir),
            ]
        )
    a, g = read_trajectories(tmp_path / "alpaca_format.jsonl"), read_trajectories(tmp_path / "gpt_format.jsonl")
    assert [(r.question, r.turns, r.prediction) for r in a] == [(r.question, r.turns, r.prediction) for r in g]


def test_import_labels_multitask_tasks(data_dir, tmp_path):
    out = tmp_path / "mt.jsonl"
    main(
        [
            "import",
            str(data_dir / "finetune/alpaca_format/multitask_multimethod.json"),
            "--out",
            str(out),
            "--data-dir",
            str(data_dir),
        ]
    )
    records = read_trajectories(out)
    assert len(records) == 2063
    tasks = {t: sum(r.task == t for r in records) for t in ("hotpotqa", "strategyqa", "mmlu")}
    assert tasks["hotpotqa"] >= 500 and tasks["strategyqa"] > 0 and tasks["mmlu"] > 0
    # the 500 GPT-4 HotpotQA ReAct trajectories of hotpotqa.json are all found again in the mix
    assert sum(r.task == "hotpotqa" and r.method == "react" for r in records) == 500
    assert all(r.question.startswith("Question:") for r in records if r.task == "mmlu")


def test_score_reproduces_the_papers_em_exactly(data_dir, capsys):
    files = [str(data_dir / TRAJS.format(name)) for name in PAPER]
    assert main(["score", *files, "--expected", "500", "--json", "--data-dir", str(data_dir)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [round(r["em"], 3) for r in rows] == list(PAPER.values())
    gpt35 = rows[2]
    assert gpt35["n"] == 465 and gpt35["expected"] == 500
    assert round(gpt35["turns_mean"], 1) == 3.0 and round(gpt35["turns_std"], 1) == 4.8  # Table 4


def test_score_ignores_stored_em_and_counts_missing_as_wrong(data_dir, tmp_path, capsys):
    dev = get_task("hotpotqa").load(data_dir, "dev")
    right = Trajectory(
        dev[0].question, "junk", "hotpotqa", "react", [Turn("t", f"finish[{dev[0].answer}]")], dev[0].answer, id="0"
    )
    wrong = Trajectory(
        dev[1].question, dev[1].answer, "hotpotqa", "react", [Turn("t", "finish[nope]")], "nope", em=1.0, id="1"
    )
    write_trajectories(tmp_path / "t.jsonl", [right, wrong])
    main(["score", str(tmp_path / "t.jsonl"), "--expected", "4", "--json", "--data-dir", str(data_dir)])
    row = json.loads(capsys.readouterr().out)
    assert (row["em"], row["n"], row["expected"]) == (0.25, 2, 4)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["score", "x.jsonl", "--data-dir", "/nonexistent"], "data dir /nonexistent (from --data-dir) does not exist"),
        (["score", "missing.jsonl", "--task", "wiki"], "unknown task 'wiki'"),
        (["score", "missing.jsonl"], "no such file: missing.jsonl"),
    ],
)
def test_cli_user_errors_are_one_line_without_traceback(data_dir, argv, message):
    env = {"FIREACT_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    r = run_cli([sys.executable, "-m", "fireact", *argv], env=env)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
