"""Tolerant parsing of one generated agent step into a thought and an action.

Models (small fine-tuned ones most of all) write `Action 2: Search[x]`, forget the `Thought:`
label, or run on into a made-up `Observation:`. All of that is accepted; what cannot be read
becomes an end reason on the episode, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fireact.data.react_grammar import ACTION_LINE, BARE_ACTION, OBSERVATION_LABEL, THOUGHT_LABEL, parse_action

TOOL_NAMES = ("search", "finish")


@dataclass
class Step:
    thought: str
    action: str  # the action text as written (normalised to `tool[arg]` when it parses)
    tool: str | None  # lower-case tool name, None when no well-formed action was found
    argument: str | None
    error: str | None  # an end reason (no_action, bad_action, unknown_tool) or None


def parse_step(text: str, tools: tuple[str, ...] = TOOL_NAMES) -> Step:
    """One assistant turn (`Thought: ...\\nAction: tool[arg]`) -> Step."""
    m = ACTION_LINE.search(text)
    if m is None and (obs := OBSERVATION_LABEL.search(text)):
        text = text[: obs.start()]  # no action: whatever follows a made-up observation is not ours
    if m:
        thought = THOUGHT_LABEL.sub("", text[: m.start()].strip(), count=1).strip()
        action = m.group(1).strip()
        parsed = parse_action(action)
        if parsed is None:
            bare = BARE_ACTION.search(action)  # "search[x] to find y": keep the well-formed part
            if bare is None:
                return Step(thought, action, None, None, "bad_action")
            parsed = (bare.group(1).lower(), bare.group(2).strip())
    else:
        # No Action line: accept a tool call written inside the thought, as FireAct's parser did.
        bare = BARE_ACTION.search(text)
        if bare is None:
            return Step(THOUGHT_LABEL.sub("", text.strip(), count=1).strip(), "", None, None, "no_action")
        thought = THOUGHT_LABEL.sub("", text[: bare.start()].strip(), count=1).strip()
        parsed = (bare.group(1).lower(), bare.group(2).strip())
    tool, arg = parsed
    action = f"{tool}[{arg}]"
    if tool not in tools:
        return Step(thought, action, tool, arg, "unknown_tool")
    return Step(thought, action, tool, arg, None)


def parse_direct_answer(text: str) -> str:
    """IO prompting: the answer is a finish[...] if the model wrote one, else its first line."""
    bare = re.search(r"finish\s*\[([^\]\n]*)\]", text, re.IGNORECASE)
    if bare:
        return bare.group(1).strip()
    line = text.strip().splitlines()[0] if text.strip() else ""
    return re.sub(r"^\s*(Answer|Final answer)\s*:\s*", "", line, flags=re.IGNORECASE).strip()
