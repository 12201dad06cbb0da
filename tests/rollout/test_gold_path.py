"""The gold-path teacher: it plays the supporting titles through the tool it is given, in the order a
reader would follow them, quotes what leads on, and refuses when the tool would not show the gold."""

from __future__ import annotations

import pytest

from fireact.data.tasks import Example
from fireact.errors import FireactError
from fireact.rollout.gold_path import gold_path_episode

PAGES = {
    "Peer Gynt (play)": "Peer Gynt (play): A verse play of 1867. It was written by Henrik Ibsen in Italy.",
    "Henrik Ibsen": "Henrik Ibsen: Henrik Johan Ibsen was a Norwegian playwright. He was born in Skien in 1828.",
    "Skien": "Skien: Skien is a city in Telemark, Norway. Its population is 55,000.",
    "Oslo": "Oslo: Oslo is the capital of Norway. It was founded in 1040.",
}


def tool(query: str) -> str:
    return PAGES.get(query, "Nothing: no such page.")


def test_bridge_first_then_the_answers_page_each_thought_quoting_what_leads_on():
    q = Example("7", "In which year was the author of Peer Gynt born?", "1828")
    t = gold_path_episode(q, "hotpotqa", ["Henrik Ibsen", "Peer Gynt (play)"], tool)
    assert [turn.action for turn in t.turns] == ["search[Peer Gynt (play)]", "search[Henrik Ibsen]", "finish[1828]"]
    assert [turn.observation for turn in t.turns[:2]] == [PAGES["Peer Gynt (play)"], PAGES["Henrik Ibsen"]]
    assert t.turns[0].thought == "I need to search Peer Gynt (play)."
    assert t.turns[1].thought == "It was written by Henrik Ibsen in Italy. I need to search Henrik Ibsen."
    assert t.turns[2].thought == "He was born in Skien in 1828. So the answer is 1828."
    assert (t.em, t.prediction, t.finished, t.id, t.meta) == (1.0, "1828", True, "7", {"gold_path": True})


def test_comparison_quotes_both_pages_in_the_questions_order():
    q = Example("8", "Are Oslo and Skien both in Norway?", "yes")
    t = gold_path_episode(q, "hotpotqa", ["Skien", "Oslo"], tool)
    assert [turn.action for turn in t.turns] == ["search[Oslo]", "search[Skien]", "finish[yes]"]
    assert (
        t.turns[-1].thought
        == "Oslo is the capital of Norway. Skien is a city in Telemark, Norway. So the answer is yes."
    )


def test_refuses_where_the_tool_would_not_show_the_way():
    q = Example("9", "In which year was the author of Peer Gynt born?", "1828")
    assert gold_path_episode(q, "hotpotqa", ["Peer Gynt (play)", "Missing page"], tool) is None  # no such page
    assert gold_path_episode(Example("9", q.question, "1906"), "hotpotqa", ["Henrik Ibsen"], tool) is None  # no gold
    assert gold_path_episode(q, "hotpotqa", [], tool) is None


def test_real_wiki_world_yields_demonstrations_whose_observations_are_the_tools(data_dir):
    from fireact.data.tasks import wiki_rows
    from fireact.data.wiki_questions import default_corpus, example_id
    from fireact.tools.wiki import WikiSearch

    wiki = WikiSearch(default_corpus(data_dir))
    rows = wiki_rows(data_dir, "wiki-train")[:40]
    made = [
        (r, t)
        for r in rows
        if (
            t := gold_path_episode(
                Example(example_id(r), r["question"], r["answer"]),
                "hotpotqa",
                r["supporting_titles"],
                wiki,
            )
        )  # fmt: skip
    ]
    assert len(made) >= 0.8 * len(rows)
    for r, t in made:
        assert {turn.action for turn in t.turns[:-1]} == {f"search[{title}]" for title in r["supporting_titles"]}
        assert all(turn.observation == wiki(turn.action[7:-1]) for turn in t.turns[:-1])


def test_expert_iteration_refuses_gold_paths_without_supporting_titles():
    from fireact.modules.expert_iteration import ExpertIteration
    from fireact.rollout.config import RolloutConfig

    with pytest.raises(FireactError, match="gold_path needs HotpotQA's supporting titles.*split 'train'"):
        ExpertIteration("sft.yaml", "adapter", "out", gold_path=True, pool=RolloutConfig(split="train"))


def test_only_questions_no_episode_solved_get_a_demonstration():
    from fireact.data.trajectory import Trajectory
    from fireact.rollout.gold_path import unsolved_gold_paths

    def episode(qid: str, question: str, answer: str, em: float) -> Trajectory:
        return Trajectory(question, answer, "hotpotqa", "react", [], answer if em else "?", em, em, id=qid)

    born = "In which year was the author of Peer Gynt born?"
    episodes = [
        *(episode("solved", born, "1828", em) for em in (0.0, 1.0)),  # one right sample: no teacher
        *(episode("unsolved", born, "1828", 0.0) for _ in range(2)),
        episode("no-way", "When was Oslo founded?", "1040", 0.0),  # its titles miss a page: no demonstration
        episode("untitled", born, "1828", 0.0),  # no supporting titles known
    ]
    titles = {t: ["Henrik Ibsen", "Peer Gynt (play)"] for t in ("solved", "unsolved")} | {"no-way": ["Missing"]}
    demos = unsolved_gold_paths(episodes, titles, tool)
    assert [(t.id, t.prediction, t.source) for t in demos] == [("unsolved", "1828", "gold-path")]
