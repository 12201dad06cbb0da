"""The ReAct text grammar, in one place: step labels (`Thought 2:`), actions (`tool[argument]`) and
the "Episode finished, reward = ..." line FireAct's files end with.

The agent's step parser (`fireact.agent.parsing`), the release readers (`fireact.data.fireact_format`)
and the renderer (`fireact.data.prompt_style`) all read ReAct text with these patterns.
"""

from __future__ import annotations

import re

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
