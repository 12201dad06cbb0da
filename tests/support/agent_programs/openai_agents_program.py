"""An OpenAI Agents SDK agent with two function tools, as its author wrote it; only the base URL is fireact's."""

import sys
from pathlib import Path

from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).parent))
from almanac import divide, lookup, reward  # noqa: E402

set_tracing_disabled(True)  # offline: no traces exported to OpenAI


async def run(example, base_url: str) -> float:
    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=1)
    agent = Agent(
        name="researcher",
        instructions="Answer with the almanac's facts. Use the tools.",
        tools=[function_tool(lookup), function_tool(divide)],
        model=OpenAIChatCompletionsModel(model="policy", openai_client=client),
        model_settings=ModelSettings(max_tokens=24),
    )
    result = await Runner.run(agent, example.question, max_turns=4)
    return reward(example, str(result.final_output), base_url)
