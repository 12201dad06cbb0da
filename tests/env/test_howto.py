"""docs/howto/environment.md as a user follows it: its environment file exactly as printed, a teacher
behind the real openai client generating trajectories in both protocols, the mask audit, the export
and import round trip, a DataModule mixing it with FireAct's own records, and eval of a local model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fireact.cli import main
from fireact.data.fireact_format import read_any
from fireact.data.trajectory import read_trajectories

HOWTO = Path(__file__).resolve().parents[2] / "docs" / "howto" / "environment.md"


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """The how-to's environment file, exactly as the page prints it."""
    code = re.search(r"```python\n(.*?)```", HOWTO.read_text(encoding="utf-8"), re.DOTALL).group(1)
    path = tmp_path_factory.mktemp("howto") / "shop.py"
    path.write_text(code, encoding="utf-8")
    return path


def shop_teacher(body: dict) -> str:
    """A teacher that knows the shop: price the question's item, then answer what the tool said."""
    messages = body["messages"]
    tool_calls = "<tools>" in messages[0]["content"]
    question = next(m["content"] for m in messages if m["role"] == "user")
    quantity, item = re.search(r"What do (\d+) (\w+)s cost", question).groups()
    if not any(m["role"] == "assistant" for m in messages):
        arguments = {"item": item, "quantity": int(quantity)}
        if tool_calls:
            return f'I look up the price.\n<tool_call>\n{{"name": "price", "arguments": {json.dumps(arguments)}}}\n</tool_call>'
        return f"Thought: I look up the price.\nAction: price[{json.dumps(arguments)}]"
    amount = re.search(r"[\d.]+", messages[-1]["content"].split("Observation:")[-1]).group(0)
    if tool_calls:
        return f'It costs {amount}.\n<tool_call>\n{{"name": "finish", "arguments": {{"answer": "{amount}"}}}}\n</tool_call>'
    return f"Thought: It costs {amount}.\nAction: finish[{amount}]"


@pytest.mark.parametrize("protocol", ["react", "tool-calls"])
def test_the_howto_environment_generates_trains_and_round_trips(shop, tmp_path, monkeypatch, capsys, protocol):
    from chat_standin import ChatStandIn

    monkeypatch.setenv("OPENAI_API_KEY", "sk-howto-0123456789")
    out = tmp_path / "teacher.jsonl"
    with ChatStandIn(shop_teacher) as srv:
        args = [
            "generate",
            "--env",
            str(shop),
            "--env-args",
            '{"n": 6}',
            "--lm",
            "openai:teacher",
            "--base-url",
            srv.url,
        ]
        assert main([*args, "--protocol", protocol, "--n", "4", "--only-successful", "--out", str(out)]) == 0
    records = read_trajectories(out)
    assert len(records) == 4 and {t.task for t in records} == {"shop"} and {t.reward for t in records} == {1.0}
    for t in records:
        item, quantity = re.search(r"What do (\d+) (\w+)s", t.question).groups()[::-1]
        assert (t.turns[0].tool, t.turns[0].arguments) == ("price", {"item": item, "quantity": int(quantity)})
        assert t.turns[-1].tool == "finish" and t.instructions.startswith("You answer questions about a shop")
        assert [s["function"]["name"] for s in t.tools] == ["stock", "price", "finish"]
    capsys.readouterr()

    # the loss is on the agent's text only: its thoughts and calls, never the tool's answers
    assert main(["mask-audit", "--data", str(out), "--protocol", protocol, "--n", "1", "--json"]) == 0
    audit = json.loads(capsys.readouterr().out.splitlines()[0])
    trained = "".join(audit["trained"])
    observation = records[0].turns[0].observation
    assert "price" in trained and "I look up the price." in trained and "You answer questions" not in trained
    assert "Observation" not in trained and "tool_response" not in trained
    assert any(observation in m for m in audit["masked"])

    # export in the tools API's shape and import it back: the same calls, names and arguments
    exported = tmp_path / "train.jsonl"
    assert main(["export-data", "--format", "openai", "--protocol", "tool-calls", "--sources", str(out),
                 "--val-size", "0", "--out", str(exported)]) == 0  # fmt: skip
    line = json.loads(exported.read_text().splitlines()[0])
    assert [t["function"]["name"] for t in line["tools"]] == ["stock", "price", "finish"]
    back = read_any(exported)
    assert sorted((t.question, [(x.tool, x.arguments) for x in t.turns]) for t in back) == sorted(
        (t.question, [(x.tool, x.arguments) for x in t.turns]) for t in records
    )
