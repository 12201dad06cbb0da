"""`fireact report`: the paper's analyses of a set of runs, on hand-made runs and on FireAct's released ones."""

from __future__ import annotations

import json

import pytest

from fireact.cli import main
from fireact.data.evaluation import acted_as, mcnemar, method_choice, method_references
from fireact.data.trajectory import Trajectory, Turn, write_trajectories

FINISH = Turn("I know it.", "finish[x]")


def episode(qid: str, right: bool, turns: list[Turn]) -> Trajectory:
    return Trajectory(f"q{qid}?", "x", "hotpotqa", "react", turns, "x", float(right), float(right), id=qid)


def test_acted_as_reads_what_the_episode_did():
    assert acted_as(episode("1", True, [FINISH])) == "cot"
    assert acted_as(episode("1", True, [Turn("Look it up.", "search[x]", "obs"), FINISH])) == "react"
    reflect = Turn("Reflection: I searched the wrong name.", "search[y]", "obs")
    assert acted_as(episode("1", True, [Turn("t", "search[x]", "obs"), reflect, FINISH])) == "reflexion"
    assert acted_as(episode("1", False, [Turn("The film is X.", "")])) == "no action"  # not a one-turn answer
    assert acted_as(episode("1", False, [Turn("t", "search[x]", "obs"), Turn("t", "")])) == "react"
    searched = episode("3", True, [Turn("t", "search[x]", "obs"), FINISH])
    shares = method_choice(
        [episode("1", True, [FINISH]), episode("2", False, [FINISH]), searched, episode("4", False, [])]
    )
    assert [(m.method, m.episodes, m.em) for m in shares] == [
        ("cot", 2, 0.5), ("react", 1, 1.0), ("reflexion", 0, 0.0), ("no action", 1, 0.0)
    ]  # fmt: skip


def test_references_and_paired_test():
    cot = [episode(str(i), i < 4, [FINISH]) for i in range(10)]  # right on 0-3
    react = [episode(str(i), 2 <= i < 8, [FINISH]) for i in range(10)]  # right on 2-7
    refs = method_references({"cot": cot, "react": react})
    assert refs == {"questions": 10, "random_method_em": pytest.approx(0.5), "oracle_em": pytest.approx(0.8)}
    test = mcnemar(cot, react)  # cot-only right: 0, 1; react-only right: 4-7
    assert (test["only_first"], test["only_second"]) == (2, 4)
    assert test["p_value"] == pytest.approx(2 * (1 + 6 + 15) / 64)  # exact two-sided binomial, n=6, k=2


def test_report_on_the_released_runs(data_dir, capsys, tmp_path):
    """The release's fine-tuned runs on 500 HotpotQA dev questions: Llama-2-7B at the paper's 26.2 EM;
    the paired test against GPT-3.5 agrees with the EM difference; bad input is one line."""
    trajs = sorted((data_dir / "trajs").glob("hotpotqa_dev_0_500_*.json"))
    gpt = next(p for p in trajs if "gpt-3.5" in p.name)
    llama7 = next(p for p in trajs if "llama-2-7b" in p.name)
    assert main(["report", str(gpt), str(llama7), "--expected", "500", "--json"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert second["em"] == pytest.approx(0.262) and first["em"] == pytest.approx(0.40)
    vs = second["vs_first"]
    assert vs["p_value"] < 0.001 and vs["only_first"] > vs["only_second"]
    assert {m["method"]: m["episodes"] for m in second["acted_as"]} == {
        "cot": 0,
        "react": 500,
        "reflexion": 0,
        "no action": 0,
    }
    assert main(["report", str(gpt)]) == 0 and "per-question oracle" not in capsys.readouterr().out
    single = [f"cot={gpt}", "react"]
    assert main(["report", str(gpt), "--single", *single]) == 2
    assert "--single 'react': expected METHOD=FILE" in capsys.readouterr().err
    write_trajectories(tmp_path / "empty.jsonl", [])
    assert main(["report", str(tmp_path / "empty.jsonl")]) == 2
    assert "empty.jsonl: empty file, no records" in capsys.readouterr().err


def test_a_training_file_is_not_reported_as_a_run_of_wrong_answers(data_dir, capsys):
    chat = data_dir / "finetune" / "gpt_format" / "multitask_multimethod.jsonl"
    assert main(["report", str(chat)]) == 2
    assert "none of its 2063 records has a gold answer or a reward: a training set" in capsys.readouterr().err
