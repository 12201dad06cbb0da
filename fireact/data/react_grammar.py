"""The ReAct text grammar, in one place: step labels (`Thought 2:`), actions (`tool[argument]`), the
"Episode finished, reward = ..." line FireAct's files end with, and the text a step and an
environment's tool list are written as.

The agent's step parser (`fireact.agent.parsing`), the release readers (`fireact.data.fireact_format`)
and the renderer (`fireact.data.prompt_style`) all read ReAct text with these patterns.
"""

from __future__ import annotations

import re
from typing import Any, Protocol


class Step(Protocol):
    """What a step's text is written from (a `Turn`; trajectory.py reads its calls with this grammar)."""

    thought: str
    action: str


_LABEL = r"^\s*{}\s*\d*\s*:"  # "Action:", "Action 2 :", "action:" (models and files number and case them)

ACTION_LINE = re.compile(_LABEL.format("Action") + r"\s*(.*)$", re.IGNORECASE | re.MULTILINE)
THOUGHT_LABEL = re.compile(_LABEL.format("Thought") + r"\s*", re.IGNORECASE)
OBSERVATION_LABEL = re.compile(_LABEL.format("Observation"), re.IGNORECASE | re.MULTILINE)
FIELD_LINE = re.compile(_LABEL.format("(Thought|Action|Observation)") + r"\s?(.*)$", re.IGNORECASE)

ACTION = re.compile(r"^\s*(\w+)\s*\[(.*)\]\s*$", re.DOTALL)  # a whole action: tool[argument]
BARE_ACTION = re.compile(r"\b(search|finish)\s*\[([^\]\n]*)\]", re.IGNORECASE)  # a tool call inside other text
FINISH_CALL = re.compile(r"finish\s*\[(.*)\]", re.IGNORECASE | re.DOTALL)
EPISODE_FINISHED = re.compile(r"Episode finished,\s*reward\s*=(?:\s*(\S+))?", re.IGNORECASE)  # group 1: the value


def parse_action(action: str) -> tuple[str, str] | None:
    """`search[q]` -> ("search", "q"); None when the action is not `tool[argument]`."""
    m = ACTION.match(action or "")
    return (m.group(1).lower(), m.group(2).strip()) if m else None


# FireAct's two tools and their one string argument: `search[q]` is search {"query": q}
DEFAULT_ARGUMENT = {"search": "query", "finish": "answer"}


def default_call(action: str) -> tuple[str, dict[str, str]] | None:
    """`search[q]` -> ("search", {"query": "q"}); None for anything but FireAct's search and finish."""
    parsed = parse_action(action)
    if parsed is None or parsed[0] not in DEFAULT_ARGUMENT:
        return None
    return parsed[0], {DEFAULT_ARGUMENT[parsed[0]]: parsed[1]}


def cut_after_action(text: str) -> int | None:
    """Index just after the first complete `Action: ...` line, or None while it is unfinished.

    Generation stops there: anything after an action line (a made-up observation) is discarded.
    """
    m = ACTION_LINE.search(text)
    if m is None:
        return None
    end = text.find("\n", m.end())
    if end == -1:
        return None
    return end


def single_string(parameters: dict[str, Any]) -> str | None:
    """The parameter's name when a tool takes exactly one string: ReAct writes it `name[value]`."""
    props = parameters.get("properties") or {}
    if len(props) != 1:
        return None
    ((key, spec),) = props.items()
    return key if isinstance(spec, dict) and spec.get("type") == "string" else None


def agent_text(turn: Step) -> str:
    """What the agent writes in one step (FireAct's assistant message); no Thought line when empty (IO)."""
    return f"Thought: {turn.thought}\nAction: {turn.action}" if turn.thought else f"Action: {turn.action}"


def observation_text(observation: str) -> str:
    return f"Observation: {observation}"


def react_signature(name: str, parameters: dict[str, Any]) -> str:
    """How ReAct text writes a call of the tool: `name[query]`, `name[{"a": <integer>}]`, `name[]`."""
    key = single_string(parameters)
    if key is not None:
        return f"{name}[{key}]"
    props = parameters.get("properties") or {}
    if not props:
        return f"{name}[]"
    shape = ", ".join(f'"{k}": <{(v or {}).get("type", "value")}>' for k, v in props.items())
    return f"{name}[{{{shape}}}]"


def react_system(tools: list[dict[str, Any]] | None, instructions: str | None) -> str | None:
    """The system text of a ReAct episode: nothing for FireAct's own tools (its zero-shot format), else
    the environment's instructions and its tools as ReAct actions."""
    if tools is None:
        return instructions
    lines = [
        f"- {react_signature(t['function']['name'], t['function'].get('parameters') or {})}: "
        f"{t['function'].get('description', '')}"
        for t in tools
    ]
    listed = "Solve the task with interleaving Thought and Action steps. An Action is one of:\n" + "\n".join(lines)
    return f"{instructions}\n\n{listed}" if instructions else listed
