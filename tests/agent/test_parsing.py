"""Parsing of model steps and the episode step machine's end reasons (fed real completions text)."""

from __future__ import annotations

import pytest

from fireact.agent.methods import Episode, parse_direct_answer
from fireact.agent.prompts import few_shot_prefix, pick_exemplars
from fireact.data.prompt_style import PromptStyle
from fireact.data.react_grammar import cut_after_action
from fireact.data.step_parsing import parse_step
from fireact.data.tasks import Example
from fireact.data.trajectory import Trajectory, Turn
from fireact.env.builtin import task_environment
from fireact.lm.base import Completion, truncate_at_stop


def test_parse_step_variants():
    s = parse_step("Thought: I need X.\nAction: search[X films]")
    assert (s.thought, s.tool, s.argument, s.error) == ("I need X.", "search", "X films", None)
    s = parse_step("Thought 2: ok\nAction 2: Finish[Paris]\nObservation 2: made up")
    assert (s.tool, s.argument, s.action) == ("finish", "Paris", "finish[Paris]")
    assert parse_step("just rambling").error == "no_action"
    assert parse_step("Thought: x\nAction: look it up").error == "bad_action"
    s = parse_step("Thought: x\nAction: lookup[y]")
    assert (s.error, s.tool) == ("unknown_tool", "lookup")
    s = parse_step("I think the answer is finish[Rome] indeed")  # no Action line: accepted as FireAct did
    assert (s.tool, s.argument, s.error) == ("finish", "Rome", None)
    assert parse_step("Thought: x\nAction: search[y]", tools=("finish",)).error == "unknown_tool"


def test_cut_and_truncate():
    text = "Thought: a\nAction: search[b]\nObservation: fake"
    assert text[: cut_after_action(text)] == "Thought: a\nAction: search[b]"
    assert cut_after_action("Thought: a\nAction: search[b") is None
    assert truncate_at_stop(text, ["\nObservation"], False) == "Thought: a\nAction: search[b]"
    assert parse_direct_answer("Answer: Paris\nmore") == "Paris"
    assert parse_direct_answer("finish[Rome]") == "Rome"


@pytest.fixture(scope="module")
def hotpot():
    return task_environment("hotpotqa", lambda q: f"result for {q}")


def _episode(hotpot, method="react", max_turns=3):
    return Episode(Example("7", "Which city is the capital of France?", "Paris"), hotpot, method, max_turns=max_turns)


def test_episode_react_finish_and_scoring(hotpot):
    ep = _episode(hotpot)
    ep.feed(Completion("Thought: search it\nAction: search[capital of France]", 10, 5, 0.01))
    assert not ep.done and ep.turns[0].observation == "result for capital of France"
    ep.feed(Completion("Thought: found\nAction: finish[Paris]", 12, 4, 0.02))
    t = ep.to_trajectory()
    assert (t.end_reason, t.prediction, t.em, t.f1) == ("finish", "Paris", 1.0, 1.0)
    assert t.meta["prompt_tokens"] == 22 and t.meta["cost_usd"] == pytest.approx(0.03)
    assert [x.observation for x in t.turns] == ["result for capital of France", None]
    Trajectory.from_dict(__import__("json").loads(t.to_json()))  # round-trips through the schema


@pytest.mark.parametrize(
    "text,reason", [("blah", "no_action"), ("Thought: a\nAction: ask[x]", "unknown_tool"), ("Action: go", "bad_action")]
)
def test_episode_format_errors_end_episode(hotpot, text, reason):
    ep = _episode(hotpot)
    ep.feed(Completion(text))
    assert ep.done and ep.to_trajectory().end_reason == reason


def test_episode_max_turns_error_and_cot(hotpot):
    ep = _episode(hotpot, max_turns=2)
    for _ in range(2):
        ep.feed(Completion("Thought: a\nAction: search[b]"))
    assert ep.done and ep.end_reason == "max_turns" and len(ep.turns) == 2
    ep = _episode(hotpot)
    ep.feed(Completion("", error="APIConnectionError: down"))
    assert ep.end_reason == "error" and ep.meta["error"].startswith("APIConnectionError")
    ep = _episode(hotpot, method="cot", max_turns=1)
    ep.feed(Completion("Thought: search it\nAction: search[x]"))
    assert ep.end_reason == "unknown_tool"  # CoT may only finish
    ep = _episode(hotpot, method="io", max_turns=1)
    ep.feed(Completion("Paris"))
    assert ep.turns == [Turn("", "finish[Paris]", None)] and ep.prediction == "Paris"


def test_reflexion_asks_for_reflection_at_rounds_6_and_10(hotpot):
    ep = _episode(hotpot, method="reflexion", max_turns=11)
    for r in range(1, 11):
        prompt = ep.prompt()
        asked = "Reflect" in prompt[-1]["content"]
        assert asked == (r in (6, 10))
        ep.feed(Completion(f"Thought: try {r}\nAction: search[q{r}]"))
    assert ep.meta["reflections"] == [6, 10]
    assert ep.turns[5].thought.startswith("Reflection:") and "Reflect" not in ep.turns[5].observation


def test_prompts_zero_shot_is_gpt_format_and_few_shot_is_seeded():
    turns = [Turn("t1", "search[a]", "o1")]
    msgs = PromptStyle("chat").prompt("Q?", turns)
    assert msgs == [
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "Thought: t1\nAction: search[a]"},
        {"role": "user", "content": "Observation: o1"},
    ]
    alpaca = PromptStyle("alpaca").prompt("Q?", turns)
    assert alpaca.startswith("Below is an instruction") and alpaca.endswith("Observation: o1\n")
    pool = [
        Trajectory(f"q{i}", "a", "hotpotqa", "react", [Turn("t", "finish[a]")], "a", 1.0, end_reason="finish")
        for i in range(10)
    ]
    pool.append(Trajectory("bad", "a", "hotpotqa", "react", [], None, 0.0, end_reason="no_action"))
    a = pick_exemplars(pool, "hotpotqa", 3, seed=1, exclude_questions={"q0"})
    assert [e.question for e in a] == [
        e.question for e in pick_exemplars(list(reversed(pool)), "hotpotqa", 3, seed=1, exclude_questions={"q0"})
    ]
    assert all(e.em == 1.0 and e.question != "q0" for e in a)
    prefix = few_shot_prefix("react", a)
    assert prefix.count("Question: ") == 3 and "(END OF EXAMPLES)" in prefix
    chat = PromptStyle("chat").prompt("Q?", [], few_shot_prefix("react", a, fmt="chat"))
    assert [m["role"] for m in chat] == ["user", "assistant"] * 3 + ["user"]
    assert chat[0]["content"].startswith("Solve a question") and chat[-1] == {"role": "user", "content": "Q?"}
    assert parse_step("Observation: made up\nAction: finish[x]").argument == "x"


def test_bad_backend_specs_are_user_errors():
    from fireact.errors import FireactError
    from fireact.lm.factory import make_lm

    for spec, msg in (
        ("gpt-4", "expected openai:MODEL"),
        ("foo:bar", "unknown backend"),
        ("hf:/no/such/model", "hf:/no/such/model: no such folder"),
    ):
        with pytest.raises(FireactError, match=msg):
            make_lm(spec)
