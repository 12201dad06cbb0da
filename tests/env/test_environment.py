"""Environments with any tools: schemas from typed functions, calls checked against them, tools that
fail or hang, records that keep structured calls, and every bad input named where it is."""

from __future__ import annotations

import json
import time

import pytest
from prefix_check import assert_prompts_are_training_prefixes

from fireact.agent.methods import Episode
from fireact.data.prompt_style import PromptStyle, prompt_ids, prompt_text
from fireact.data.tasks import Example
from fireact.data.trajectory import Trajectory, Turn
from fireact.env.environment import Environment
from fireact.env.loading import load_environment
from fireact.errors import FireactError
from fireact.lm.base import Completion
from fireact.tools.function import Tool


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from fireact.lm.models import load_tokenizer

    return load_tokenizer(smollm2_dir)


def lookup(table: str, row: int, columns: list[str] | None = None) -> str:
    """Read a row of a table.

    Args:
        table: the table's name
        row: the row number, from 0
        columns: which columns (default: all)
    """
    return f"{table}[{row}] {columns or 'all'}"


def note(text: str) -> str:
    """Write a note.

    Args:
        text: what to write
    """
    return "noted"


def clock() -> str:
    """The current time (always noon here)."""
    return "12:00"


def broken(x: int) -> str:
    """Fails.

    Args:
        x: anything
    """
    raise ValueError(f"no row {x}")


def env_of(*tools, **kw) -> Environment:
    examples = [{"id": "q1", "question": "What is in row 2?", "answer": "b", "extra": 7}]
    return Environment("table", examples, list(tools), **kw)


def test_a_function_becomes_a_tool_through_get_json_schema():
    tool = Tool.from_function(lookup)
    assert tool.schema["function"]["parameters"]["required"] == ["table", "row"]
    assert tool.parameters["properties"]["row"] == {"type": "integer", "description": "the row number, from 0"}

    def untyped(x):
        """Doc.

        Args:
            x: thing
        """

    with pytest.raises(FireactError, match="tool untyped: .*Argument x is missing a type hint"):
        Tool.from_function(untyped)

    def undocumented(x: int) -> int:
        return x

    with pytest.raises(FireactError, match="undocumented.*docstring"):
        Tool.from_function(undocumented)
    with pytest.raises(FireactError, match="parameters must be a JSON schema of type object"):
        Tool("t", "d", {"type": "string"}, str)


def test_failing_hanging_and_chatty_tools_answer_with_text():
    assert Tool.from_function(broken)({"x": 3}) == "Error: broken failed: ValueError: no row 3"
    slow = Tool("slow", "sleeps", {"type": "object", "properties": {}}, lambda: time.sleep(5), timeout=0.2)
    started = time.monotonic()
    assert slow({}) == "Error: slow did not answer within 0.2 s." and time.monotonic() - started < 2
    chatty = Tool("chatty", "talks", {"type": "object", "properties": {}}, lambda: "x" * 10_000, max_chars=100)
    assert chatty({}) == "x" * 100 + " [...]"


@pytest.mark.parametrize("protocol", ["react", "tool-calls"])
def test_calls_of_any_tool_are_checked_run_and_recorded(protocol):
    env = env_of(lookup, note, clock, broken)
    style = PromptStyle("chat", protocol=protocol)
    ep = Episode(Example("q1", "What is in row 2?", "b", "table"), env, "react", style, max_turns=8)

    def step(name, arguments):
        if protocol == "react":
            return Completion(f"Thought: go\nAction: {name}[{json.dumps(arguments)}]")
        return Completion(f'go\n<tool_call>\n{{"name": "{name}", "arguments": {json.dumps(arguments)}}}\n</tool_call>')

    ep.feed(step("lookup", {"table": "t", "row": 2, "columns": ["a"]}))
    ep.feed(Completion("Thought: time\nAction: clock[]") if protocol == "react" else step("clock", {}))
    ep.feed(step("broken", {"x": 1}))  # raises: its error is the observation, the episode goes on
    ep.feed(
        step("finish", {"answer": "b"}) if protocol == "tool-calls" else Completion("Thought: b\nAction: finish[b]")
    )
    t = ep.to_trajectory()
    assert t.end_reason == "finish" and t.em == 1.0 and t.meta["tool_errors"] == 1
    assert [(x.tool, x.arguments) for x in t.turns] == [
        ("lookup", {"table": "t", "row": 2, "columns": ["a"]}), ("clock", {}), ("broken", {"x": 1}),
        ("finish", {"answer": "b"})]  # fmt: skip
    assert t.turns[0].observation == "t[2] ['a']" and t.turns[2].observation.startswith("Error: broken failed")
    assert [x.action for x in t.turns][:2] == ['lookup[{"table": "t", "row": 2, "columns": ["a"]}]', "clock[]"]
    assert [s["function"]["name"] for s in t.tools] == ["lookup", "note", "clock", "broken", "finish"]
    again = Trajectory.from_dict(json.loads(t.to_json()))
    assert again.turns == t.turns and again.tools == t.tools and again.version == 3


@pytest.mark.parametrize(
    "call,says",
    [({"table": "t"}, "'row' is a required property"), ({"table": "t", "row": "two"}, "(argument row): 'two' is not of type 'integer'"),
     ({"table": 1, "row": 2}, "(argument table)")],
)  # fmt: skip
def test_arguments_that_do_not_fit_the_schema_are_format_errors_that_say_why(call, says):
    ep = Episode(Example("q1", "Q?", "b", "table"), env_of(lookup), "react", PromptStyle("chat", protocol="tool-calls"))
    ep.feed(Completion(f'<tool_call>{{"name": "lookup", "arguments": {json.dumps(call)}}}</tool_call>'))
    assert ep.end_reason == "bad_action" and says in ep.turns[0].observation and ep.turns[0].tool is None
    ep = Episode(Example("q1", "Q?", "b", "table"), env_of(lookup), "react", PromptStyle("chat"))
    ep.feed(Completion("Thought: x\nAction: lookup[{not json}]"))
    assert ep.end_reason == "bad_action" and "not a JSON object" in ep.turns[0].observation


@pytest.mark.parametrize("fmt,protocol", [("chat", "react"), ("alpaca", "react"), ("chat", "tool-calls")])
def test_prompt_plus_step_is_the_training_text_for_tools_of_0_1_and_several_arguments(tokenizer, fmt, protocol):
    env = env_of(lookup, note, clock)
    turns = [
        Turn("Read it.", 'lookup[{"table": "t", "row": 2}]', "t[2] all", "lookup", {"table": "t", "row": 2}),
        Turn("Note it.", "note[row 2 is b]", "noted", "note", {"text": "row 2 is b"}),
        Turn("Time?", "clock[]", "12:00", "clock", {}),
        Turn("So b.", "finish[b]", None),
    ]
    traj = Trajectory("What is in row 2?", "b", "table", "react", turns, "b", 1.0, 1.0, id="q1",
                      tools=env.schemas(), instructions="Read tables.")  # fmt: skip
    assert assert_prompts_are_training_prefixes([traj], tokenizer, fmt, protocol) == 4
    text, _ = PromptStyle(fmt, protocol=protocol).render(traj, tokenizer)
    assert "Read tables." in text and "lookup" in text and ("clock[]" in text or '"name": "clock"' in text)
    assert prompt_ids(PromptStyle(fmt, protocol=protocol).prompt(traj.question, [], tools=env.schemas()), tokenizer)
    assert prompt_text(PromptStyle(fmt).prompt(traj.question, []), tokenizer) != prompt_text(
        PromptStyle(fmt).prompt(traj.question, [], tools=env.schemas()), tokenizer
    )


def test_old_records_read_as_structured_calls_and_fireacts_own_render_as_before():
    v2 = {"question": "Q?", "answer": "A", "task": "hotpotqa", "method": "react", "version": 2,
          "turns": [{"thought": "t", "action": "search[x y]", "observation": "o"}, {"thought": "", "action": "finish[A]"}]}  # fmt: skip
    t = Trajectory.from_dict(v2)
    assert [(x.tool, x.arguments) for x in t.turns] == [("search", {"query": "x y"}), ("finish", {"answer": "A"})]
    assert t.version == 3 and t.tools is None and "tools" not in t.to_dict()
    assert PromptStyle("chat").prompt("Q?", t.turns) == [
        {"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Thought: t\nAction: search[x y]"},
        {"role": "user", "content": "Observation: o"}, {"role": "assistant", "content": "Action: finish[A]"}]  # fmt: skip


def test_environment_and_reward_errors_name_what_and_where():
    with pytest.raises(FireactError, match="two tools named 'note'"):
        env_of(note, note).toolset()
    with pytest.raises(FireactError, match="finish is fireact's own"):
        env_of(Tool("finish", "x", {"type": "object", "properties": {}}, str)).toolset()
    with pytest.raises(FireactError, match=r"example 1: an example needs a non-empty string `question`"):
        Environment("e", [{"question": "ok"}, {"prompt": "no question"}], []).rows()
    with pytest.raises(FireactError, match="id 'a' is used by two examples"):
        Environment("e", [{"id": "a", "question": "x"}, {"id": "a", "question": "y"}], []).rows()
    traj = Trajectory("What is in row 2?", "b", "table", "react", [], "b", id="q1")
    assert env_of(reward=lambda t, ex: ex["extra"] / 10).reward_of(traj) == 0.7  # other keys reach the reward
    with pytest.raises(FireactError, match="returned 'yes' \\(str\\) on example 'q1'"):
        env_of(reward=lambda t, ex: "yes").reward_of(traj)
    with pytest.raises(FireactError, match="the reward raised on example 'q1': KeyError"):
        env_of(reward=lambda t, ex: ex["missing"]).reward_of(traj)


def test_load_environment_says_what_is_wrong_with_a_users_file(tmp_path):
    with pytest.raises(FireactError, match="no such file"):
        load_environment(str(tmp_path / "nope.py"))
    with pytest.raises(FireactError, match="is a directory"):
        load_environment(str(tmp_path) + "/")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(FireactError, match="defines no load_environment"):
        load_environment(str(tmp_path / "empty.py"))
    (tmp_path / "raises.py").write_text("def load_environment(k=0):\n    return {}[k]\n")
    with pytest.raises(FireactError, match=r"load_environment raised KeyError: 3 at .*raises.py:2"):
        load_environment(str(tmp_path / "raises.py"), '{"k": 3}')
    (tmp_path / "wrong.py").write_text("def load_environment():\n    return 'env'\n")
    with pytest.raises(FireactError, match="returned str, not a fireact.Environment"):
        load_environment(str(tmp_path / "wrong.py"))
    with pytest.raises(FireactError, match="--env-args is not JSON"):
        load_environment("company-db", "{k: 1}")
    with pytest.raises(FireactError, match="no built-in environment, file or importable module"):
        load_environment("no_such_module_here")
