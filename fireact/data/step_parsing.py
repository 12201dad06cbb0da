"""Tolerant parsing of one generated agent step into a thought and a call, in either protocol (ReAct
text or a JSON tool call; `fireact.data.protocols` picks one).

Models (small fine-tuned ones most of all) write `Action 2: Search[x]`, forget the `Thought:`
label, or run on into a made-up `Observation:`. All of that is accepted; what cannot be read
becomes an end reason on the episode, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fireact.data.react_grammar import ACTION_LINE, BARE_ACTION, OBSERVATION_LABEL, THOUGHT_LABEL, parse_action
from fireact.data.tool_calls import (
    CALL_CLOSE,
    CALL_OPEN,
    argument_error,
    parameters_by_name,
    react_action,
    react_arguments,
    single_string,
)

TOOL_NAMES = ("search", "finish")
# the tools a step may call: names of FireAct's own, or name -> JSON-schema parameters of any
Tools = Sequence[str] | Mapping[str, dict[str, Any]]


def _parameters(tools: Tools) -> Mapping[str, dict[str, Any]]:
    if isinstance(tools, Mapping):
        return tools
    default = parameters_by_name(None)
    return {name: default.get(name, {}) for name in tools}


@lru_cache(maxsize=64)
def _bare_action(names: tuple[str, ...]) -> re.Pattern:
    """A call of one of these tools written inside other text (`search[x] to find y`)."""
    if names == TOOL_NAMES or set(names) <= set(TOOL_NAMES):
        return BARE_ACTION
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"\b({alternatives})\s*\[([^\]\n]*)\]", re.IGNORECASE)


@dataclass
class Step:
    thought: str
    action: str  # the action text as written (normalised to `tool[arg]` when it parses)
    tool: str | None  # lower-case tool name, None when no well-formed action was found
    argument: str | None  # the call's one string argument (FireAct's tools), or its arguments as text
    error: str | None  # an end reason (no_action, bad_action, unknown_tool) or None
    message: str | None = None  # what a tool runtime answers a malformed call
    arguments: dict[str, Any] | None = None  # the call's JSON arguments, when it is well-formed


def parse_step(text: str, tools: Tools = TOOL_NAMES) -> Step:
    """One assistant turn (`Thought: ...\\nAction: tool[arg]`) -> Step. A tool of one string parameter
    is written `tool[value]`, any other `tool[{json arguments}]`; arguments that do not fit the tool's
    schema are a bad_action whose message says why."""
    params = _parameters(tools)
    bare_action = _bare_action(tuple(params))
    m = ACTION_LINE.search(text)
    if m is None and (obs := OBSERVATION_LABEL.search(text)):
        text = text[: obs.start()]  # no action: whatever follows a made-up observation is not ours
    if m:
        thought = THOUGHT_LABEL.sub("", text[: m.start()].strip(), count=1).strip()
        action = m.group(1).strip()
        parsed = parse_action(action)
        if parsed is None:
            bare = bare_action.search(action)  # "search[x] to find y": keep the well-formed part
            if bare is None:
                return Step(thought, action, None, None, "bad_action")
            parsed = (bare.group(1).lower(), bare.group(2).strip())
    else:
        # No Action line: accept a tool call written inside the thought, as FireAct's parser did.
        bare = bare_action.search(text)
        if bare is None:
            return Step(THOUGHT_LABEL.sub("", text.strip(), count=1).strip(), "", None, None, "no_action")
        thought = THOUGHT_LABEL.sub("", text[: bare.start()].strip(), count=1).strip()
        parsed = (bare.group(1).lower(), bare.group(2).strip())
    tool, arg = parsed
    action = f"{tool}[{arg}]"
    if tool not in params:
        return Step(thought, action, tool, arg, "unknown_tool")
    arguments = react_arguments(arg, params[tool])
    problem = arguments if isinstance(arguments, str) else argument_error(tool, arguments, params[tool])
    if problem is not None:
        return Step(thought, action, tool, arg, "bad_action", problem)
    return Step(thought, react_action(tool, arguments, params[tool]), tool, arg, None, None, arguments)


def parse_tool_step(text: str, tools: Tools = TOOL_NAMES) -> Step:
    """One assistant turn of the tool-call protocol (its thought, then `<tool_call>{"name", "arguments"}`,
    the close tag optional: generation stops on it). A call that is not valid JSON, names an unknown
    tool or whose arguments do not fit its schema is a format error whose `message` says what was
    wrong, as a tool runtime would answer it."""
    params = _parameters(tools)
    start = text.find(CALL_OPEN)
    if start < 0:
        return Step(text.strip(), "", None, None, "no_action")
    thought, body = text[:start].strip(), text[start + len(CALL_OPEN) :]
    body = body[: body.find(CALL_CLOSE)] if CALL_CLOSE in body else body
    body = body.strip()
    try:
        call = json.loads(body)
        arguments = call.get("arguments", {}) if isinstance(call, dict) else None
        arguments = json.loads(arguments) if isinstance(arguments, str) else arguments  # the OpenAI API's JSON string
    except json.JSONDecodeError as e:
        return Step(thought, body, None, None, "bad_action", f"Error: the tool call is not valid JSON ({e.msg}).")
    name = call.get("name") if isinstance(call, dict) else None
    if not isinstance(name, str) or not isinstance(arguments, dict):
        return Step(thought, body, None, None, "bad_action", 'Error: a tool call is {"name": ..., "arguments": {...}}.')
    if name not in params:
        known = ", ".join(params)
        return Step(thought, body, name, None, "unknown_tool", f"Error: unknown tool {name!r}; the tools are {known}.")
    key = single_string(params[name])
    if key is not None and isinstance(arguments.get(key), str):  # FireAct's grammar: the value stripped
        arguments = {**arguments, key: arguments[key].strip()}
    problem = argument_error(name, arguments, params[name])
    if problem is not None:
        return Step(thought, body, name, None, "bad_action", problem)
    argument = arguments[key] if key is not None else json.dumps(arguments, ensure_ascii=False)
    return Step(thought, react_action(name, arguments, params[name]), name, argument, None, None, arguments)
