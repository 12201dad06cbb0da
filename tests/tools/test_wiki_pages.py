"""ReAct's Wikipedia actions over a local corpus: a page's first sentence, similar titles when there is
no such page, lookup of the next sentence holding a keyword, each episode with its own open page; and
the gold-path teacher that reads with them."""

from __future__ import annotations

from wiki_corpus import write_corpus

from fireact.agent.methods import Episode
from fireact.data.prompt_style import PromptStyle
from fireact.data.tasks import Example
from fireact.env.environment import Environment
from fireact.lm.base import Completion
from fireact.rollout.gold_path import gold_path_lookup_episode
from fireact.tools.wiki_pages import WikiPages


def test_search_and_lookup_read_one_sentence_at_a_time(tmp_path):
    pages = WikiPages(write_corpus(tmp_path / "c.jsonl"))
    state: dict = {}
    assert pages.search("scott derrickson", state) == "Scott Derrickson (born July 16, 1966) is an American director."
    assert pages.lookup("Los Angeles", state) == "(Result 1 / 1) He lives in Los Angeles."
    assert pages.lookup("Los Angeles", state) == "No more results."
    assert pages.search("Tim Burton films", {}).startswith(
        "Could not find [Tim Burton films]. Similar: ['Ed Wood (film)'"
    )
    assert pages.lookup("x", {}) == "No page is open: search[entity] first."


def test_two_episodes_keep_their_own_pages(tmp_path):
    pages = WikiPages(write_corpus(tmp_path / "c.jsonl"))
    env = Environment("wikienv", [{"id": "1", "question": "Where?"}], pages.tools())
    a, b = (Episode(Example(i, "Where?", "x", "wikienv"), env, "react", PromptStyle("chat")) for i in "ab")
    a.feed(Completion("Thought: t\nAction: search[Scott Derrickson]"))
    b.feed(Completion("Thought: t\nAction: search[Ed Wood]"))
    a.feed(Completion("Thought: t\nAction: lookup[lives]"))
    b.feed(Completion("Thought: t\nAction: lookup[cult]"))
    assert a.turns[-1].observation == "(Result 1 / 1) He lives in Los Angeles."
    assert b.turns[-1].observation == "(Result 1 / 1) He made cult films in Hollywood."
    assert [s["function"]["name"] for s in env.schemas()] == ["search", "lookup", "finish"]
    assert "state" not in str(env.schemas())  # the episode's state is never shown to the model


def test_the_gold_path_teacher_looks_up_what_the_first_sentence_does_not_say(tmp_path):
    pages = WikiPages(write_corpus(tmp_path / "c.jsonl"))
    question = "The director of Doctor Strange (2016 film) lives in which city?"
    t = gold_path_lookup_episode(Example("q", question, "Los Angeles"), "wikienv",
                                 ["Doctor Strange (2016 film)", "Scott Derrickson"], pages)  # fmt: skip
    assert [x.action for x in t.turns] == ["search[Doctor Strange (2016 film)]", "search[Scott Derrickson]",
                                           "lookup[lives]", "finish[Los Angeles]"]  # fmt: skip
    assert t.turns[2].observation == "(Result 1 / 1) He lives in Los Angeles." and t.em == 1.0
    assert gold_path_lookup_episode(Example("q", "Who?", "Tokyo"), "wikienv", ["Ed Wood"], pages) is None
