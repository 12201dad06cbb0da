"""Tasks, the paper's dev selection and the trajectory schema."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fireact.data.tasks import TASKS, get_task, select
from fireact.data.token_log import TokenTurn
from fireact.data.trajectory import Trajectory, Turn, read_trajectories, write_trajectories
from fireact.errors import FireactError

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
    assert "token_turns" not in t.to_json()  # only where the rollout recorded tokens
    legacy = {**json.loads(t.to_json()), "version": 1}
    legacy["reward"] = legacy.pop("em")  # schema 1 called the exact match reward
    unversioned = {k: v for k, v in legacy.items() if k != "version"}  # hand-written: reward says schema 1
    (tmp_path / "v1.jsonl").write_text(json.dumps(legacy) + "\n" + json.dumps(unversioned) + "\n")
    assert read_trajectories(tmp_path / "v1.jsonl") == [t, t]
    tokens = replace(t, token_turns=[TokenTurn(0, [1, 2], [3, 4], [-0.5, -0.25]), TokenTurn(4, [5], [6], [-1.0])])
    write_trajectories(tmp_path / "tokens.jsonl", [tokens])
    assert read_trajectories(tmp_path / "tokens.jsonl") == [tokens]


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
        (
            '{"question": "Q", "answer": "A", "task": "hotpotqa", "method": "cot", "token_turns": '
            '[{"keep": 0, "prompt": [1], "generated": [2, 3], "logprobs": [-0.1]}]}',
            "token_turns: logprobs must be one number per generated token",
        ),
        (
            '{"question": "Q", "answer": "A", "task": "hotpotqa", "method": "cot", "token_turns": '
            '[{"keep": 0, "prompt": ["a"], "generated": [], "logprobs": []}]}',
            "token_turns: keep, prompt and generated must be token ids",
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


def test_chat_content_parts_of_text_read_as_their_joined_text(assets, tmp_path):
    """OpenAI content parts are valid chat input: all-text parts read as their texts joined with "",
    exactly as the plain-string records they split; an image part is refused with file and line."""
    from fireact.data.fireact_format import read_fireact_file

    plain = (assets / "fireact_gpt.jsonl").read_text().splitlines()
    parted = []
    for line in plain:
        row = json.loads(line)
        for m in row["messages"]:
            text = m["content"]
            m["content"] = [{"type": "text", "text": text[:7]}, {"type": "text", "text": text[7:]}]
        parted.append(json.dumps(row))
    (tmp_path / "parts.jsonl").write_text("\n".join(parted) + "\n")
    as_text = [(t.question, t.turns, t.prediction) for t in read_fireact_file(assets / "fireact_gpt.jsonl")]
    assert [(t.question, t.turns, t.prediction) for t in read_fireact_file(tmp_path / "parts.jsonl")] == as_text

    image = {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
    row = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Q?"}, image]}]}
    (tmp_path / "image.jsonl").write_text(plain[0] + "\n" + json.dumps(row) + "\n")
    with pytest.raises(FireactError, match=r"image\.jsonl:2: .*messages\[0\]\.content has a part of type 'image_url'"):
        read_fireact_file(tmp_path / "image.jsonl")
