"""Several samples a question (`eval --samples G`): EM is the mean over episodes, beside pass@G, maj@G
and the share of questions with one reward for all samples; one sample each changes nothing."""

from __future__ import annotations

import json

import pytest

from fireact.cli import main
from fireact.data.evaluation import summarize
from fireact.data.trajectory import Trajectory, Turn, write_trajectories


def sample(qid: str, prediction: str | None, gold: str, i: int, error: bool = False) -> Trajectory:
    right = prediction is not None and prediction.lower() == gold.lower()
    turns = [Turn("t", f"finish[{prediction}]")] if prediction is not None else []
    return Trajectory(f"question {qid}?", gold, "hotpotqa", "react", turns, prediction, float(right), float(right),
                      "error" if error else "finish", qid, meta={"sample": i})  # fmt: skip


# 3 questions x 4 samples, 5 right: q0 right 3 of 4 (majority right), q1 right 2 of 4 but its majority
# answer is wrong ("Lyon" x2 seen first vs "Paris" x2: a tie goes to the first seen), q2 lost all its
# samples to backend errors
RUNS = [
    *(sample("0", p, "Rome", i) for i, p in enumerate(["Rome", "rome", "Milan", "Rome"])),
    *(sample("1", p, "Paris", i) for i, p in enumerate(["Lyon", "Paris", "Lyon", "Paris"])),
    *(sample("2", None, "Oslo", i, error=True) for i in range(4)),
]


def test_samples_are_scored_per_episode_and_per_question():
    s = summarize(RUNS, expected=3)
    assert (s.n, s.questions, s.samples, s.expected) == (12, 3, 4, 3)
    assert s.em == pytest.approx(5 / 12)  # not 5 / 3
    assert s.pass_at_g == pytest.approx(2 / 3)
    assert s.maj_at_g == pytest.approx(1 / 3)
    assert s.same_reward == pytest.approx(1 / 3)  # only q2 (all 0): no GRPO gradient there
    assert s.format_errors == 4


def test_a_missing_question_counts_as_g_wrong_episodes():
    s = summarize(RUNS[:8], expected=3)  # q2 absent from the file
    assert s.em == pytest.approx(5 / 12) and s.pass_at_g == pytest.approx(2 / 3) and s.questions == 2


def test_one_sample_each_is_unchanged():
    single = [sample(str(i), "x" if i < 3 else "y", "x", 0) for i in range(5)]
    for t in single:
        t.meta = {}
    s = summarize(single, expected=6)
    assert s.em == pytest.approx(3 / 6) == s.pass_at_g == s.maj_at_g and s.samples == 1 and s.n == 5


def test_score_and_report_print_the_sampled_metrics(tmp_path, capsys, data_dir):
    path = tmp_path / "sampled.jsonl"
    write_trajectories(path, RUNS)
    assert main(["score", str(path), "--expected", "3", "--json", "--data-dir", str(data_dir)]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # score re-scores against the task's gold: ids 0-2 are HotpotQA dev questions, so use report's rewards
    assert row["n"] == 12 and row["samples"] == 4 and row["em"] <= 1.0
    assert main(["report", str(path), "--expected", "3", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert (row["questions"], row["n"], row["samples"]) == (3, 12, 4)
    assert row["em"] == pytest.approx(5 / 12) and row["pass_at_g"] == pytest.approx(2 / 3)
    assert row["maj_at_g"] == pytest.approx(1 / 3)
    assert main(["report", str(path), "--expected", "3"]) == 0
    table = capsys.readouterr().out
    assert "66.7 / 33.3 (G=4)" in table and "41.7" in table
