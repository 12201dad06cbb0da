"""The tool-call protocol: one tool definition, the Hermes rendering and its loss mask, the parser of a
generated call, episodes played in it, and the lossless conversion to the OpenAI tools shape and back."""

from __future__ import annotations

import json

import pytest

from fireact.agent.methods import Episode, method_spec
from fireact.data import tool_calls
from fireact.data.encoding import encode
from fireact.data.fireact_format import read_any
from fireact.data.prompt_style import PromptStyle, prompt_text
from fireact.data.step_parsing import parse_tool_step
from fireact.data.tasks import Example
from fireact.data.trajectory import Trajectory, Turn
from fireact.env.builtin import task_environment
from fireact.errors import FireactError
from fireact.lm.base import Completion

STYLE = PromptStyle("chat", protocol="tool-calls")


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from fireact.lm.models import load_tokenizer

    return load_tokenizer(smollm2_dir)


def test_one_tool_definition_serves_prompt_parser_and_export():
    names = [t["function"]["name"] for t in tool_calls.TOOLS]
    assert names == ["search", "finish"] and tool_calls.parameters_by_name(None)["search"]["required"] == ["query"]
    system = tool_calls.hermes_system()
    assert all(json.dumps(t) in system for t in tool_calls.TOOLS)  # the prompt lists the same schemas
    turn = Turn("I look it up.", "search[Nile length]", "6,650 km")
    text = tool_calls.agent_text(turn)
    assert text == 'I look it up.\n<tool_call>\n{"name": "search", "arguments": {"query": "Nile length"}}\n</tool_call>'
    step = parse_tool_step(text)  # what the renderer writes, the parser reads back
    assert (step.thought, step.action, step.tool, step.argument, step.error) == (
        "I look it up.", "search[Nile length]", "search", "Nile length", None,
    )  # fmt: skip
    (call,) = tool_calls.openai_messages("Q?", [turn])[1]["tool_calls"]
    assert call["function"] == {"name": "search", "arguments": '{"query": "Nile length"}'}


@pytest.mark.parametrize(
    "text,error,says",
    [
        ("I think.", "no_action", None),
        ("x\n<tool_call>\n{name: search}\n</tool_call>", "bad_action", "not valid JSON"),
        ('<tool_call>{"name": "lookup", "arguments": {"query": "a"}}</tool_call>', "unknown_tool", "unknown tool 'lookup'"),
        ('<tool_call>{"name": "search", "arguments": {"q": "a"}}</tool_call>', "bad_action", "'query' is a required property"),
        ('<tool_call>["search"]</tool_call>', "bad_action", '{"name": ..., "arguments": {...}}'),
    ],
)  # fmt: skip
def test_malformed_calls_are_format_errors_that_say_why(text, error, says):
    step = parse_tool_step(text)
    assert step.error == error and (says is None or says in step.message)


def test_generation_stops_at_the_close_tag_and_arguments_may_be_a_json_string():
    assert method_spec("react", protocol="tool-calls").stop == [tool_calls.CALL_CLOSE]
    step = parse_tool_step('ok\n<tool_call>\n{"name": "finish", "arguments": "{\\"answer\\": \\"Paris\\"}"}\n')
    assert (step.tool, step.argument, step.error) == ("finish", "Paris", None)


def test_episode_in_the_tool_call_protocol():
    env = task_environment("hotpotqa", lambda q: f"result for {q}")
    ep = Episode(Example("7", "Capital of France?", "Paris", "hotpotqa"), env, "react", STYLE)
    ep.feed(Completion('Look.\n<tool_call>\n{"name": "search", "arguments": {"query": "France"}}'))
    prompt = ep.prompt()
    assert (
        prompt[0]["role"] == "system"
        and prompt[-1]["content"] == "<tool_response>\nresult for France\n</tool_response>"
    )
    ep.feed(Completion('<tool_call>{"name": "finish", "arguments": {"answer": "Paris"}}</tool_call>'))
    t = ep.to_trajectory()
    assert (t.end_reason, t.prediction, t.em, [x.action for x in t.turns]) == ("finish", "Paris", 1.0,
                                                                                 ["search[France]", "finish[Paris]"])  # fmt: skip
    bad = Episode(Example("8", "Q?", "A", "hotpotqa"), env, "react", STYLE)
    bad.feed(Completion('<tool_call>{"name": "search", "arguments": {"query": }}</tool_call>'))
    t = bad.to_trajectory()  # a format error of the episode, never a crash; the observation says what was wrong
    assert t.end_reason == "bad_action" and "not valid JSON" in t.turns[0].observation


def test_loss_on_assistant_turns_only_tool_calls_included(tokenizer, assets):
    trajs = [t for t in read_any(assets / "fireact_gpt.jsonl") if t.turns]
    for traj, row in zip(trajs, encode(trajs, tokenizer, STYLE)):
        trained = tokenizer.decode(row.input_ids[row.trained].tolist())
        turns = STYLE.turns(traj)
        assert trained == "".join(tool_calls.agent_text(t) + "<|im_end|>" for t in turns)
        masked = tokenizer.decode(row.input_ids[~row.trained].tolist())
        assert "<tools>" in masked and traj.question in masked  # the tool list and the question: never trained
        for t in turns[:-1]:
            assert tool_calls.response_text(t.observation) in masked  # tool results: never trained


def test_release_converts_to_openai_tool_calls_and_back_losslessly(data_dir):
    records = [r for r in read_any(data_dir / "finetune" / "gpt_format" / "multitask_multimethod.jsonl") if r.turns]
    for r in records:
        messages = tool_calls.openai_messages(r.question, r.turns)
        assert tool_calls.turns_from_openai(json.loads(json.dumps(messages)), r.id) == (r.question, r.turns)
    calls = sum(1 for r in records for t in r.turns if tool_calls.call_of(t))
    assert calls > 2 * len(records)  # most steps are tool calls, not plain text


def test_tool_calls_protocol_is_saved_with_the_weights_and_needs_chat(tmp_path, tokenizer):
    STYLE.save(tmp_path)
    assert PromptStyle.load(tmp_path) == STYLE
    PromptStyle("chat").save(tmp_path)
    assert "protocol" not in (tmp_path / "fireact_prompt_style.json").read_text()  # react files read as before
    with pytest.raises(FireactError, match="the tool-calls protocol is a chat format"):
        PromptStyle("alpaca", protocol="tool-calls")
    text = prompt_text(STYLE.prompt("Q?", []), tokenizer)
    assert text.startswith("<|im_start|>system\nYou answer") and text.endswith("<|im_start|>assistant\n")


def test_bad_tool_call_messages_name_where(tmp_path):
    good = Trajectory("Q?", "A", "hotpotqa", "react", [Turn("t", "search[x]", "o")])
    messages = tool_calls.openai_messages(good.question, good.turns)
    messages[1]["tool_calls"][0]["function"]["arguments"] = "{oops"
    with pytest.raises(ValueError, match="f.jsonl:3: message 1: tool call arguments are not JSON"):
        tool_calls.turns_from_openai(messages, "f.jsonl:3")
    messages[1]["tool_calls"][0]["function"] = {"name": "browse", "arguments": "{}"}
    with pytest.raises(ValueError, match="unknown tool"):
        tool_calls.turns_from_openai(messages, "f.jsonl:3")
