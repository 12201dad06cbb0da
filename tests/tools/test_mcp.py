"""Tools from real MCP servers over stdio: the PyPI `mcp-server-sqlite` behind the company-db
environment, and a server of the SDK's FastMCP that fails to start or dies mid-run."""

from __future__ import annotations

import sys
import time

import pytest

from fireact.agent.methods import Episode
from fireact.data.prompt_style import PromptStyle
from fireact.data.tasks import Example
from fireact.env.company_db import load_environment, teacher_episode
from fireact.env.environment import Environment
from fireact.errors import FireactError
from fireact.lm.base import Completion
from fireact.tools.mcp import MCPServer

SERVER = '''
import os, sys
from mcp.server.fastmcp import FastMCP

port = int(sys.argv[sys.argv.index("--http") + 1]) if "--http" in sys.argv else 8000
mcp = FastMCP("t", port=port)


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@mcp.tool()
def die() -> str:
    """Exit at once."""
    print("dying on purpose", file=sys.stderr, flush=True)
    os._exit(3)


if "--fail" in sys.argv:
    sys.exit("no database at /nowhere")
mcp.run(transport="streamable-http" if "--http" in sys.argv else "stdio")
'''


@pytest.fixture(scope="module")
def company(tmp_path_factory):
    env = load_environment("train", db_dir=str(tmp_path_factory.mktemp("db")))
    yield env
    env.close()


def test_the_teacher_plays_company_db_through_the_real_sqlite_server(company):
    tools = company.toolset()
    assert sorted(tools) == ["describe_table", "divide", "list_tables", "read_query"]
    assert tools["list_tables"].parameters.get("properties", {}) == {}  # a tool of no argument
    rows = list(company.rows().values())
    for kind in ("salary", "average"):
        example = next(r for r in rows if r["kind"] == kind)
        t = teacher_episode(company, example)
        assert t.reward == 1.0 and t.prediction == example["answer"]
        assert [x.tool for x in t.turns][:3] == ["list_tables", "describe_table", "read_query"]
        assert "employees" in t.turns[0].observation and "salary" in t.turns[1].observation
    assert t.turns[-2].tool == "divide" and set(t.turns[-2].arguments) == {"numerator", "denominator"}


def test_a_server_side_error_is_an_observation_and_the_episode_goes_on(company):
    ep = Episode(Example("x", "How many?", "3", "company-db"), company, "react", PromptStyle("chat"), max_turns=4)
    ep.feed(Completion("Thought: change it\nAction: read_query[DELETE FROM employees]"))
    assert not ep.done and ep.turns[0].observation.startswith("Error: Only SELECT queries are allowed")
    ep.feed(Completion("Thought: count\nAction: read_query[SELECT COUNT(*) FROM employees]"))
    assert ep.turns[1].observation == "[{'COUNT(*)': 150}]" and ep.meta["tool_errors"] == 1


def test_a_server_that_fails_to_start_or_dies_is_named_with_its_stderr(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    with pytest.raises(FireactError, match="(?s)failed to start.*no database at /nowhere"):
        MCPServer(command=[sys.executable, str(script), "--fail"]).start()
    with pytest.raises(FireactError, match="has no tool.*subtract"):
        MCPServer(command=[sys.executable, str(script)], tools=["add", "subtract"]).start()
    env = Environment("calc", [{"id": "1", "question": "1 + 2?", "answer": "3"}],
                      [MCPServer(command=[sys.executable, str(script)], timeout=5)])  # fmt: skip
    try:
        ep = Episode(Example("1", "1 + 2?", "3", "calc"), env, "react", PromptStyle("chat"))
        ep.feed(Completion('Thought: add\nAction: add[{"a": 1, "b": 2}]'))
        assert ep.turns[0].observation == "3" and ep.turns[0].arguments == {"a": 1, "b": 2}
        started = time.monotonic()
        ep.feed(Completion("Thought: stop\nAction: die[]"))  # the server process exits mid-run
        assert ep.done and ep.end_reason == "error" and "dying on purpose" in ep.meta["error"]
        assert time.monotonic() - started < 15  # never hangs
    finally:
        env.close()


def test_an_mcp_server_over_streamable_http(tmp_path):
    import socket
    import subprocess

    script = tmp_path / "server.py"
    script.write_text(SERVER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(script), "--http", str(port)], stderr=subprocess.DEVNULL)
    server = MCPServer(url=f"http://127.0.0.1:{port}/mcp", tools=["add"])
    try:
        for _ in range(100):  # until it listens
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        (add,) = server.start()
        assert add.parameters["required"] == ["a", "b"] and add({"a": 2, "b": 5}) == "7"
    finally:
        server.close()
        proc.kill()
        proc.wait()


def test_a_tiny_model_calls_an_mcp_tool_in_the_tool_call_protocol(tiny_model_dir, tmp_path):
    """The tool-call protocol end to end over MCP: a tiny model taught one reply to a prompt declaring
    the server's tools, its two-argument call run by the real server and recorded as name + arguments."""
    from caller_model import teach
    from transformers import AutoModelForCausalLM

    from fireact.data.prompt_style import prompt_text
    from fireact.lm.hf import HFLM
    from fireact.lm.models import load_tokenizer
    from fireact.rollout.config import EpisodeConfig
    from fireact.rollout.runners import run_rollouts

    script = tmp_path / "server.py"
    script.write_text(SERVER)
    env = Environment("calc", [{"id": "1", "question": "1 + 2?", "answer": "3"}],
                      [MCPServer(command=[sys.executable, str(script)], tools=["add"])])  # fmt: skip
    try:
        style = PromptStyle("chat", protocol="tool-calls")
        tok = load_tokenizer(tiny_model_dir)
        first = prompt_text(style.prompt("1 + 2?", [], tools=env.schemas()), tok)
        assert '"name": "add"' in first and "<tools>" in first
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        teach(model, tok, [first], '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>')
        lm = HFLM(model, tok, name="hf:taught", prompt_style=style)
        (t,) = run_rollouts(lm, env, env.example_list(), EpisodeConfig(max_turns=1, max_tokens=40))
        assert (t.turns[0].tool, t.turns[0].arguments, t.turns[0].observation) == ("add", {"a": 1, "b": 2}, "3")
        assert t.meta["protocol"] == "tool-calls" and t.tools == env.schemas() and t.end_reason == "max_turns"
    finally:
        env.close()
