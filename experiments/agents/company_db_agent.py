"""An OpenAI Agents SDK agent over company-db, as a user would write it: the database through the
`mcp-server-sqlite` MCP server (the SDK's own MCP client) and a Python `divide` function tool. fireact
only gives it `base_url` (`fireact rollouts --agent experiments/agents/company_db_agent.py`)."""

import re
import sys

from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from agents.exceptions import AgentsException
from agents.mcp import MCPServerStdio, create_static_tool_filter
from openai import AsyncOpenAI

from fireact.data.paths import default_cache_dir
from fireact.env.company_db import build_database, divide

set_tracing_disabled(True)  # offline: no traces exported to OpenAI
DB = default_cache_dir() / "company_db" / "company-0.sqlite"
INSTRUCTIONS = ("You answer questions about a company's SQLite database. Look at its tables, query them with SQL, "
                "and reply with the answer, a number.")  # fmt: skip


def number(text: str | None) -> float | None:
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", text or "")
    return float(m.group(0).replace(",", "")) if m else None


async def run(example, base_url: str) -> float:
    if not DB.is_file():
        build_database(DB)
    sqlite = MCPServerStdio(
        {"command": sys.executable, "args": ["-c", "from mcp_server_sqlite import main; main()", "--db-path", str(DB)]},
        tool_filter=create_static_tool_filter(["list_tables", "describe_table", "read_query"]),
        client_session_timeout_seconds=30,
    )
    async with sqlite:
        agent = Agent(
            name="analyst",
            instructions=INSTRUCTIONS,
            mcp_servers=[sqlite],
            tools=[function_tool(divide)],
            model=OpenAIChatCompletionsModel("policy", AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=2)),
            model_settings=ModelSettings(max_tokens=160, temperature=0.0),
        )
        try:
            result = await Runner.run(agent, example.question, max_turns=8)
        except AgentsException:  # out of turns, or a reply the SDK cannot use: no answer
            return 0.0
    got, gold = number(str(result.final_output)), number(example.answer)
    return float(got is not None and gold is not None and abs(got - gold) < 1e-6)
