"""What an episode did (searches, whether the gold showed up, why it failed) and the paired bootstrap
interval on an EM gain: the analyses of docs/results/on_policy.md and docs/results/reproduction.md's wiki world."""

from __future__ import annotations

import pytest

from fireact.data.evaluation import FAILURE_CLASSES, bootstrap_gain, episode_stats, failure_class, gold_seen
from fireact.data.trajectory import Trajectory, Turn


def episode(gold: str, turns: list[Turn], prediction: str | None, qid: str = "0") -> Trajectory:
    right = float(prediction is not None and prediction.lower() == gold.lower())
    end = "finish" if prediction is not None else "max_turns"
    return Trajectory("q?", gold, "hotpotqa", "react", turns, prediction, right, right, end, qid)


def search(q: str, obs: str) -> Turn:
    return Turn("t", f"search[{q}]", obs)


def test_each_episode_gets_the_first_class_that_fits():
    done = Turn("t", "finish[x]")
    cases = {
        "right": episode("Oslo", [search("a", "in Oslo"), Turn("t", "finish[Oslo]")], "Oslo"),
        "no finish": episode("Oslo", [search("a", "Oslo"), search("a", "Oslo")], None),
        "gold seen, not answered": episode("Oslo", [search("a", "The capital, Oslo."), done], "x"),
        "repeated a search": episode("Oslo", [search("A b", "no"), search("a  b", "no"), done], "x"),
        "yes/no answered wrong": episode("yes", [search("a", "yes it is"), Turn("t", "finish[no]")], "no"),
        "wrong entity, gold never retrieved": episode("Oslo", [search("a", "Bergen"), done], "x"),
    }
    assert tuple(cases) == FAILURE_CLASSES
    for name, t in cases.items():
        assert failure_class(t) == name, name


def test_gold_seen_needs_whole_words_and_never_counts_yes_no():
    assert not gold_seen(episode("Oslo", [search("a", "Oslofjord")], None))
    assert gold_seen(episode("the Oslo", [search("a", "OSLO!")], None))  # normalised: articles, case, punctuation
    assert not gold_seen(episode("yes", [search("a", "yes")], None))


def test_episode_stats_counts_searches_and_classes():
    runs = [episode("Oslo", [search("a", "Oslo"), search("b", "x"), Turn("t", "finish[Oslo]")], "Oslo", "0"),
            episode("Rome", [search("a", "Rome")], None, "1")]  # fmt: skip
    st = episode_stats(runs)
    assert (st["n"], st["em"], st["searches"], st["gold_seen"], st["right_when_seen"]) == (2, 0.5, 1.5, 2, 1)
    assert st["classes"]["right"] == 1 and st["classes"]["no finish"] == 1 and sum(st["classes"].values()) == 2


def test_bootstrap_interval_brackets_the_paired_gain():
    base = [episode("a", [], "a" if i < 20 else "b", str(i)) for i in range(100)]
    better = [episode("a", [], "a" if i < 40 else "b", str(i)) for i in range(100)]
    b = bootstrap_gain(base, better, resamples=2000)
    assert b["questions"] == 100 and b["gain"] == pytest.approx(0.20)
    assert 0.10 < b["low"] < 0.20 < b["high"] < 0.30  # 20 of 100 flipped: sd of the gain ~0.04
    assert bootstrap_gain(base, base, resamples=200) == {"questions": 100, "gain": 0.0, "low": 0.0, "high": 0.0}
    assert bootstrap_gain(base, [], resamples=10)["questions"] == 0
