"""The wiki world's question splits on the shared corpus: wiki-eval follows the paper's order, the
splits are disjoint, on-policy training never sees an evaluated or a FireAct fine-tuning question;
and a user's own question file."""

from __future__ import annotations

import json

import pytest

from fireact.data.questions_file import read_questions
from fireact.data.tasks import get_task, select
from fireact.data.trajectory import question_key
from fireact.errors import FireactError
from fireact.rollout.config import RolloutConfig


@pytest.fixture(scope="module")
def splits(data_dir):
    if not (data_dir.parent / "hotpotqa_wiki" / "questions.jsonl").is_file():
        pytest.skip("no hotpotqa_wiki beside the data dir")
    task = get_task("hotpotqa")
    return {s: task.load(data_dir, s) for s in ("wiki-eval", "wiki-val", "wiki-train", "dev", "train")}


def test_wiki_eval_is_the_papers_order_of_covered_dev_questions(splits):
    evaluated = splits["wiki-eval"]
    paper = select(splits["dev"], 500)  # the paper's 500: dev shuffled with Random(233)
    paper_ids = [e.id for e in paper]
    assert len(evaluated) == 500 and len({e.id for e in evaluated}) == 500
    covered = [e for e in evaluated if e.id in set(paper_ids)]
    assert len(covered) == 156 and evaluated[:156] == covered  # the paper's covered questions come first
    assert [e.id for e in covered] == [i for i in paper_ids if i in {e.id for e in covered}]  # in its order
    dev = {e.id: e for e in splits["dev"]}
    assert all(dev[e.id].question == e.question and dev[e.id].answer == e.answer for e in evaluated)


def test_splits_are_disjoint_and_training_never_sees_fireact_questions(splits):
    keys = {s: {question_key(e.question) for e in splits[s]} for s in ("wiki-eval", "wiki-val", "wiki-train")}
    assert len(splits["wiki-val"]) == 200 and len(splits["wiki-train"]) > 2500
    assert not keys["wiki-eval"] & keys["wiki-val"] and not keys["wiki-eval"] & keys["wiki-train"]
    assert not keys["wiki-val"] & keys["wiki-train"]
    fireact = {question_key(e.question) for e in splits["train"]}
    assert not fireact & (keys["wiki-train"] | keys["wiki-val"])
    assert all(e.answer for s in ("wiki-eval", "wiki-val", "wiki-train") for e in splits[s])


def test_a_wiki_split_is_sliced_in_order_never_reshuffled(splits, data_dir):
    first = RolloutConfig(split="wiki-eval", n=5).examples("hotpotqa", data_dir)
    assert first == splits["wiki-eval"][:5]
    assert RolloutConfig(split="wiki-eval", n=3, offset=5).examples("hotpotqa", data_dir) == splits["wiki-eval"][5:8]


def test_a_users_own_questions(tmp_path, data_dir):
    path = tmp_path / "q.jsonl"
    rows = [
        {"question": "Who wrote X?", "answer": "Ann", "id": "a"},
        {"question": "Where is Y?", "answer": ["Oslo", "Kristiania"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    got = RolloutConfig(questions=str(path)).examples("hotpotqa", data_dir)
    assert [(e.id, e.question, e.answer) for e in got] == [("a", "Who wrote X?", "Ann"), ("2", "Where is Y?", "Oslo")]
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"question": "no answer"}) + "\n")
    with pytest.raises(FireactError, match=r"q.jsonl:2: `answer` must be a string"):
        read_questions(path, "hotpotqa")
    path.write_text("[" * 100_000)
    with pytest.raises(FireactError, match=r"q.jsonl:1: JSON nested too deeply"):
        read_questions(path, "hotpotqa")


def test_coverage_and_eval_in_the_wiki_world(splits, data_dir, tmp_path, tiny_model_dir, capsys, monkeypatch):
    from fireact.cli import main

    monkeypatch.setenv("FIREACT_INDEX_DIR", str(tmp_path / "indexes"))
    assert main(["data", "coverage", "--tool", "wiki", "--n", "20", "--data-dir", str(data_dir)]) == 0
    table = capsys.readouterr().out
    assert all(s in table for s in ("wiki-eval", "wiki-val", "wiki-train", "both gold titles"))
    out = tmp_path / "eval.jsonl"
    argv = ["eval", "--lm", f"hf:{tiny_model_dir}", "--split", "wiki-eval", "--n", "2",  # wiki: the split's default
            "--max-turns", "2", "--max-tokens", "8", "--out", str(out), "--json", "--data-dir", str(data_dir)]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [e.id for e in splits["wiki-eval"][:2]] and {r["meta"]["tool"] for r in rows} == {
        "wiki"
    }


def test_the_default_tool_follows_the_questions():
    assert RolloutConfig().tool_name() == "snapshot"  # the paper's own questions: replay its searches
    assert RolloutConfig(split="wiki-train").tool_name() == "wiki"
    assert RolloutConfig(questions="q.jsonl").tool_name() == "wiki"
    assert RolloutConfig(split="wiki-eval", tool="snapshot").tool_name() == "snapshot"  # asked for wins
