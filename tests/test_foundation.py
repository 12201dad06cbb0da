"""Tasks, the paper's dev selection, the trajectory schema, FireAct import and re-scoring."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fireact.cli import main
from fireact.data.errors import FireactError
from fireact.data.tasks import TASKS, get_task, select
from fireact.data.trajectory import Trajectory, Turn, read_trajectories, write_trajectories

TRAJS = "trajs/hotpotqa_dev_0_500_{}.json"
PAPER = {  # Table 2 / 4 of the paper: EM over the 500 selected dev questions
    "llama_models_lora_llama-2-7b-d_1000_0.7_2023-09-19-00-49-36": 0.262,
    "llama_models_lora_llama-2-13b-d_1000_0.7_2023-09-18-13-40-08": 0.344,
    "ft_gpt-3.5-turbo-0613_princeton-nlp__7woQRsdi_0.0_2023-09-21-16-19-51": 0.400,
}


@pytest.mark.parametrize(
    "task,split,n,first_answer",
    [
        ("hotpotqa", "dev", 7405, "yes"),
        ("bamboogle", "test", 125, "james madison"),
        ("strategyqa", "dev", 229, "no"),
        ("mmlu", "test", 14042, "B"),
    ],
)
def test_tasks_load_with_gold_answers(data_dir, task, split, n, first_answer):
    examples = get_task(task).load(data_dir, split)
    assert len(examples) == n
    assert examples[0].answer == first_answer
    assert len({e.id for e in examples}) == n


def test_mmlu_question_lists_lettered_options(data_dir):
    q = get_task("mmlu").load(data_dir, "dev")[0].question
    assert q.startswith("Question: ") and "\nA. " in q and "\nD. " in q


def test_paper_selection_matches_fireact_rollout_order(data_dir):
    """FireAct's released rollouts are keyed by the dev indices its Random(233) shuffle picked."""
    rollout = json.loads((data_dir / TRAJS.format(next(iter(PAPER)))).read_text())
    dev = get_task("hotpotqa").load(data_dir, "dev")
    selected = select(dev, n=500, seed=233)
    assert {e.id for e in selected} == set(rollout)
    assert [e.id for e in selected[:3]] == ["3687", "6238", "5388"]
    assert select(dev, n=3, seed=233, offset=1) == selected[1:4]
    assert select(dev, n=2, seed=None) == dev[:2]


def test_unknown_task_and_split_are_clear_errors(data_dir):
    with pytest.raises(FireactError, match="unknown task 'wiki'; choose from hotpotqa"):
        get_task("wiki")
    with pytest.raises(FireactError, match="bamboogle has no split 'dev'"):
        TASKS["bamboogle"].load(data_dir, "dev")


def test_trajectory_jsonl_round_trip(tmp_path):
    t = Trajectory(
        "Q?",
        "A",
        "hotpotqa",
        "react",
        [Turn("t", "search[x]", "obs"), Turn("u", "finish[A]")],
        "A",
        1.0,
        1.0,
        meta={"teacher": "gpt-4"},
    )
    write_trajectories(tmp_path / "t.jsonl", [t, t])
    assert read_trajectories(tmp_path / "t.jsonl") == [t, t]


@pytest.mark.parametrize(
    "line,message",
    [
        ("{not json", "not valid JSON"),
        ('{"question": "Q", "answer": "A", "task": "hotpotqa", "method": "magic"}', "method 'magic' is not one of"),
        ('{"question": "Q", "answer": "A", "task": "hotpotqa"}', "missing key(s) method"),
        ('{"question": "Q", "answer": "A", "task": "hotpotqa", "method": "cot", "version": 9}', "schema version 9"),
        ('{"question": "Q", "answer": "A", "task": "hotpotqa", "method": "cot", "extra": 1}', "unknown key(s) extra"),
        (
            '{"question": "Q", "answer": "A", "task": "hotpotqa", "method": "cot", "turns": [{"thought": "t"}]}',
            "turn 0 must be",
        ),
    ],
)
def test_bad_trajectory_line_names_file_and_line(tmp_path, line, message):
    good = Trajectory("Q?", "A", "hotpotqa", "cot").to_json()
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n{line}\n")
    with pytest.raises(FireactError) as e:
        read_trajectories(path)
    assert f"{path}:2:" in str(e.value) and message in str(e.value)


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
        dev[1].question, dev[1].answer, "hotpotqa", "react", [Turn("t", "finish[nope]")], "nope", reward=1.0, id="1"
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
    r = subprocess.run([sys.executable, "-m", "fireact", *argv], capture_output=True, text=True, env=env)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
