"""How an agent's step calls a tool, one object per protocol, chosen once from the prompt style.

- `ReAct`: FireAct's text, `Thought: ...` then `Action: tool[argument]`, a tool's result an
  `Observation: ...` user turn (`fireact.data.react_grammar`); generation stops at the action line.
- `ToolCalls`: the thought, then a `<tool_call>` JSON block; a tool's result a `<tool_response>` turn,
  the tools declared in the system message (`fireact.data.tool_calls`); generation stops at the close tag.

Each renders an episode as chat messages, writes one step as the agent's text, reads a generated
step back (`fireact.data.step_parsing`) and writes an episode for a chat fine-tuning file, so the
rest of fireact asks the style's protocol instead of comparing its name.
"""

from __future__ import annotations

from typing import Any

from fireact.data import tool_calls
from fireact.data.react_grammar import agent_text, observation_text, react_system
from fireact.data.step_parsing import Step, Tools, parse_step, parse_tool_step
from fireact.data.trajectory import Turn
from fireact.errors import FireactError

Message = dict[str, str]


class Protocol:
    name: str = ""
    stop: tuple[str, ...] = ()  # where a step's generation stops
    stop_after_action: bool = False  # also stop once a complete action line is written
    chat_only: bool = False  # needs a chat template (the alpaca format cannot render it)
    declares_tools: bool = False  # the tools are listed in the prompt even when they are FireAct's own

    def conversation(
        self,
        question: str,
        turns: list[Turn],
        tools: list[dict[str, Any]] | None = None,
        instructions: str | None = None,
    ) -> list[Message]:
        """An episode as chat messages (the tools and instructions of its environment; None: FireAct's)."""
        raise NotImplementedError

    def step_text(self, turn: Turn) -> str:
        """What the agent writes in one step (the text its trained span holds)."""
        raise NotImplementedError

    def parse(self, text: str, tools: Tools) -> Step:
        """A generated step read back; never raises (a malformed step is a Step with an error)."""
        raise NotImplementedError

    def rendered(self, turns: list[Turn]) -> list[Turn]:
        """The turns this protocol writes as messages."""
        return turns

    def chat_record(self, traj_tools: list[dict[str, Any]] | None, instructions: str | None, question: str,
                    turns: list[Turn], closing: str | None) -> dict[str, Any]:  # fmt: skip
        """An episode for a chat fine-tuning file (`closing`: a last user message, e.g. the reward)."""
        raise NotImplementedError


class ReAct(Protocol):
    name = "react"
    stop = ("\nObservation",)
    stop_after_action = True

    def conversation(self, question, turns, tools=None, instructions=None):  # noqa: D102
        system = react_system(tools, instructions)
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": question})
        for turn in turns:
            messages.append({"role": "assistant", "content": agent_text(turn)})
            if turn.observation is not None:
                messages.append({"role": "user", "content": observation_text(turn.observation)})
        return messages

    def step_text(self, turn):  # noqa: D102
        return agent_text(turn)

    def parse(self, text, tools):  # noqa: D102
        return parse_step(text, tools)

    def chat_record(self, traj_tools, instructions, question, turns, closing):  # noqa: D102
        messages = self.conversation(question, turns, traj_tools, instructions)
        if closing is not None:
            messages.append({"role": "user", "content": observation_text(closing)})
        return {"messages": messages}


class ToolCalls(Protocol):
    name = "tool-calls"
    stop = (tool_calls.CALL_CLOSE,)
    chat_only = True
    declares_tools = True

    def conversation(self, question, turns, tools=None, instructions=None):  # noqa: D102
        return tool_calls.conversation(question, turns, tools, instructions)

    def step_text(self, turn):  # noqa: D102
        return tool_calls.agent_text(turn)

    def parse(self, text, tools):  # noqa: D102
        return parse_tool_step(text, tools)

    def rendered(self, turns):  # an empty step is no message: no call, no thought
        return [t for t in turns if t.thought or t.action]

    def chat_record(self, traj_tools, instructions, question, turns, closing):  # noqa: D102
        messages = tool_calls.openai_messages(question, turns)
        if instructions:
            messages.insert(0, {"role": "system", "content": instructions})
        if closing is not None:
            messages.append({"role": "user", "content": closing})
        return {"messages": messages, "tools": traj_tools or tool_calls.TOOLS}


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (ReAct(), ToolCalls())}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise FireactError(f"unknown protocol {name!r}: use one of {', '.join(PROTOCOLS)}") from None
