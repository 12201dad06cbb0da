"""LangGraph's prebuilt ReAct agent with two tools, as its author wrote it; only the base URL is fireact's."""

import sys
from pathlib import Path

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent

sys.path.insert(0, str(Path(__file__).parent))
from almanac import divide, lookup, reward  # noqa: E402


async def run(example, base_url: str) -> float:
    model = ChatOpenAI(model="policy", base_url=base_url, api_key="unused", max_retries=1, max_tokens=24)
    agent = create_react_agent(model, [tool(lookup), tool(divide)], prompt="Answer with the almanac's facts.")
    out = await agent.ainvoke({"messages": [("user", example.question)]}, {"recursion_limit": 8})
    return reward(example, out["messages"][-1].content, base_url)
