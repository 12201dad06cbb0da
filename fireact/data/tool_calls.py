"""The tool-call protocol: an agent step as an assistant message with `tool_calls`, a tool's result as
a `tool` message, the shape of the OpenAI tools API and of HF chat templates rendered with `tools=`.

The record stays one format: a step is a `Turn` with its structured call (`tool`, JSON `arguments`)
and its ReAct text (`search[query]`, or `name[{json}]` for a tool that does not take one string), so a
trajectory converts to tool-call messages and back without loss, and any record trains in either
protocol. FireAct's own tools (`TOOLS`, JSON-schema functions) are the default; an environment's
tools travel with its records (`Trajectory.tools`) and are the ones its prompts declare.

An episode travels as plain chat messages in the Hermes rendering, the convention of Hermes-2-Pro and
Qwen2.5: the tools are listed in a system message inside `<tools></tools>`, the agent writes its
thought and then `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, and a tool's result comes
back as a user turn `<tool_response>...</tool_response>`. Templates without tool support (ChatML,
e.g. SmolLM2's) render those messages as they are. A template that supports tools and writes calls in
that same `<tool_call>` syntax (`renders_calls`: Qwen2.5's and Hermes' layout) renders the episode
itself: the messages go back to the tools API's shape (`native_conversation`) and through
`apply_chat_template(messages, tools=...)`, so the model sees its own system prompt and turn layout.
A template whose calls fireact cannot read back (Llama 3.1's bare JSON, Mistral's `[TOOL_CALLS]`),
or that renders the last assistant turn otherwise than earlier ones (a thinking block only on the
last), gets the Hermes rendering.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

import jsonschema

from fireact.data.react_grammar import single_string
from fireact.data.trajectory import Turn

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search for a query; returns the top passage (or snippet) found.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "what to look for"}},
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "finish",
            "description": "Give the final answer to the question; ends the episode.",
            "parameters": {
                "type": "object",
                "properties": {"answer": {"type": "string", "description": "the answer, as short as possible"}},
                "required": ["answer"],
            },
        },
    },
]
FINISH = TOOLS[1]


def parameters_by_name(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """tool name -> its JSON-schema parameters, of a tools-API list (None: FireAct's)."""
    return {t["function"]["name"]: t["function"].get("parameters") or {} for t in tools or TOOLS}


def react_action(name: str, arguments: dict[str, Any], parameters: dict[str, Any]) -> str:
    """A call as ReAct text: `name[value]` for a tool of one string parameter (FireAct's grammar),
    `name[{json arguments}]` for any other (`name[]` when it takes none)."""
    key = single_string(parameters)
    if key is not None and set(arguments) == {key} and isinstance(arguments[key], str):
        return f"{name}[{arguments[key]}]"
    return f"{name}[{json.dumps(arguments, ensure_ascii=False)}]" if arguments else f"{name}[]"


@functools.lru_cache(maxsize=256)
def _validator(parameters: str) -> jsonschema.Validator:
    schema = json.loads(parameters)
    return jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)(schema)


def schema_error(parameters: dict[str, Any]) -> str | None:
    """What is wrong with a tool's parameters as a JSON schema of type object; None when nothing."""
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        return "parameters must be a JSON schema of type object"
    try:
        jsonschema.validators.validator_for(parameters, jsonschema.Draft202012Validator).check_schema(parameters)
    except jsonschema.SchemaError as e:
        return f"parameters are not a valid JSON schema ({e.message})"
    return None


def argument_error(name: str, arguments: Any, parameters: dict[str, Any]) -> str | None:
    """What is wrong with a call's arguments, as the agent reads it; None when they fit the schema."""
    if not isinstance(arguments, dict):
        return f"Error: {name} takes a JSON object of arguments, got {type(arguments).__name__}."
    errors = sorted(
        _validator(json.dumps(parameters, sort_keys=True)).iter_errors(arguments), key=lambda e: list(e.path)
    )
    if not errors:
        return None
    where = f" (argument {'.'.join(map(str, errors[0].path))})" if errors[0].path else ""
    return f"Error: bad arguments for {name}{where}: {errors[0].message}."


def react_arguments(text: str, parameters: dict[str, Any]) -> dict[str, Any] | str:
    """The arguments of ReAct's `name[text]`, or what is wrong with them (as the agent reads it)."""
    key = single_string(parameters)
    if key is not None:
        return {key: text}
    if not text.strip():
        return {}
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as e:
        return f"Error: the arguments are not a JSON object ({e.msg})."
    return arguments if isinstance(arguments, dict) else "Error: the arguments are not a JSON object."


CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
HERMES_SYSTEM = (
    "You answer the user's question step by step. In each step, think, then call exactly one tool. You may "
    "call the functions below. Function signatures are within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n"
    "For each function call, return a JSON object with the function name and arguments within <tool_call></tool_call> "
    'XML tags:\n<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>\n'
    "The result comes back within <tool_response></tool_response> XML tags. Call finish with the answer when you know it."
)


HERMES_HEAD = HERMES_SYSTEM.split("{tools}")[0]  # the system text before the tool list


def declared_names(tools: Any) -> set[str] | None:
    """The function names a `tools` list of the tools API declares; None when it is not such a list."""
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and t.get("type") == "function" and isinstance((t.get("function") or {}).get("name"), str)
        for t in tools
    ):
        return None
    return {t["function"]["name"] for t in tools}


def hermes_system(tools: list[dict[str, Any]] | None = None, instructions: str | None = None) -> str:
    """The system message that lists the tools (fireact's, an environment's, or a client's own for
    `fireact serve`), after an environment's instructions."""
    listed = HERMES_SYSTEM.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools or TOOLS))
    return f"{instructions}\n\n{listed}" if instructions else listed


def call_of(turn: Turn) -> tuple[str, dict[str, Any]] | None:
    """A step's structured call (name, arguments); None for a step that made no well-formed call."""
    return (turn.tool, turn.arguments or {}) if turn.tool is not None else None


def call_text(name: str, arguments: dict[str, Any]) -> str:
    return f"{CALL_OPEN}\n{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}\n{CALL_CLOSE}"


def agent_text(turn: Turn) -> str:
    """What the agent writes in one step, Hermes style: its thought, then its call. An action that is
    not a known tool call (a record of a format error) is kept as it was written."""
    call = call_of(turn)
    act = call_text(*call) if call is not None else turn.action
    return "\n".join(part for part in (turn.thought, act) if part)


def response_text(observation: str) -> str:
    return f"{RESPONSE_OPEN}\n{observation}\n{RESPONSE_CLOSE}"


def conversation(
    question: str, turns: list[Turn], tools: list[dict[str, Any]] | None = None, instructions: str | None = None
) -> list[dict[str, str]]:
    """An episode as plain chat messages in the Hermes rendering (any chat template renders them)."""
    messages = [
        {"role": "system", "content": hermes_system(tools, instructions)},
        {"role": "user", "content": question},
    ]
    for turn in turns:
        messages.append({"role": "assistant", "content": agent_text(turn)})
        if turn.observation is not None:
            messages.append({"role": "user", "content": response_text(turn.observation)})
    return messages


def openai_messages(question: str, turns: list[Turn]) -> list[dict[str, Any]]:
    """An episode in the OpenAI tools API's shape: assistant `tool_calls` (JSON-string arguments) and
    `tool` messages answering them by id. A step without a tool call (FireAct's release has a few: a
    thought, no action) is plain assistant content, and what came back a user message."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    for i, turn in enumerate(turns):
        call = call_of(turn)
        if call is None:
            messages.append({"role": "assistant", "content": agent_text(turn)})
            if turn.observation is not None:
                messages.append({"role": "user", "content": turn.observation})
            continue
        name, arguments = call
        call_id = f"call_{i}"
        function = {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}
        messages.append({"role": "assistant", "content": turn.thought or None,
                         "tool_calls": [{"id": call_id, "type": "function", "function": function}]})  # fmt: skip
        if turn.observation is not None:
            messages.append({"role": "tool", "tool_call_id": call_id, "content": turn.observation})
    return messages


def uses_tool_calls(messages: Any) -> bool:
    """Whether a message list speaks the tool-call protocol (assistant tool_calls or tool results)."""
    return isinstance(messages, list) and any(
        isinstance(m, dict) and (m.get("tool_calls") or m.get("role") == "tool") for m in messages
    )


def turns_from_openai(
    messages: list[dict[str, Any]], where: str, tools: list[dict[str, Any]] | None = None, answered: bool = False
) -> tuple[str, list[Turn]]:
    """(question, turns) of an episode in the OpenAI tools shape, its calls of the declared `tools`
    (None: FireAct's search and finish); ValueError naming the message. With `answered`, every call
    but finish must have its result (a file to train on; a recording may end on an unanswered call)."""
    params = parameters_by_name(tools)
    if not isinstance(messages, list):
        raise ValueError(f"{where}: messages must be a list, got {type(messages).__name__}")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ValueError(f"{where}: message {k} must be an object with a role, got {type(m).__name__}")
        if m.get("tool_calls") is not None and not isinstance(m["tool_calls"], list):
            raise ValueError(f"{where}: message {k}: tool_calls must be a list, got {type(m['tool_calls']).__name__}")
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        raise ValueError(f"{where}: no user message (the question)")
    question, turns = messages[users[0]].get("content") or "", []
    for k, m in enumerate(messages[users[0] + 1 :], users[0] + 1):
        role = m.get("role")
        if role == "assistant":
            calls = m.get("tool_calls") or []
            if len(calls) > 1:
                raise ValueError(f"{where}: message {k} makes {len(calls)} tool calls; an agent step makes one")
            if calls:
                name, arguments = _call_of_message(calls[0], f"{where}: message {k}", params)
                turns.append(
                    Turn(m.get("content") or "", react_action(name, arguments, params[name]), None, name, arguments)
                )
            else:
                turns.append(Turn(m.get("content") or "", "", None))
        elif role == "tool" or (role == "user" and turns and turns[-1].observation is None):
            if not turns:
                raise ValueError(f"{where}: message {k} is a tool result before any call")
            turns[-1].observation = m.get("content") or ""
    if answered:
        unanswered = next(
            (i for i, t in enumerate(turns) if t.tool not in (None, "finish") and t.observation is None), None
        )
        if unanswered is not None:
            raise ValueError(f"{where}: step {unanswered} calls {turns[unanswered].tool} but no tool result answers it")
    return question, turns


def _call_of_message(call: Any, where: str, params: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or function.get("name") not in params:
        raise ValueError(f"{where}: a tool call of an unknown tool (the declared tools are {', '.join(params)})")
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: tool call arguments are not JSON ({e.msg})") from None
    name = function["name"]
    if not isinstance(arguments, dict):
        raise ValueError(f"{where}: {name}'s arguments are not a JSON object")
    key = single_string(params[name])
    if key is not None and not isinstance(arguments.get(key), str):
        raise ValueError(f"{where}: {name} takes a string {key!r}")
    return name, arguments


def system_text(messages: list[dict[str, Any]]) -> str:
    """A client's system messages as the one text the Hermes system message opens with (and a recorded
    episode's `instructions`, so training renders what the model was served)."""
    return "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m.get("content"))


def hermes_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, str]]:
    """A client's OpenAI-shaped conversation (assistant `tool_calls`, `tool` results) as the plain chat
    messages the model was trained on: the tools listed in the system message (after the client's own
    system text), calls as `<tool_call>` blocks, results as `<tool_response>` user turns."""
    out = [{"role": "system", "content": "\n\n".join(filter(None, [system_text(messages), hermes_system(tools)]))}]
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = [call_text(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in m["tool_calls"]]
            out.append({"role": "assistant", "content": "\n".join(filter(None, [m.get("content"), *calls]))})
        elif m["role"] == "tool":
            out.append({"role": "user", "content": response_text(m.get("content") or "")})
        elif m["role"] != "system":
            out.append({"role": m["role"], "content": m.get("content") or ""})
    return out


def split_calls(text: str) -> tuple[str, list[dict[str, Any]]] | None:
    """(content before the calls, OpenAI `tool_calls`) of a generated reply; None when it makes no call
    or a call is not `{"name": str, "arguments": object}` JSON (then the text is the reply, as is)."""
    start = text.find(CALL_OPEN)
    if start < 0:
        return None
    calls = []
    for block in text[start:].split(CALL_OPEN)[1:]:
        body = block.split(CALL_CLOSE)[0].strip()
        try:
            call = json.loads(body)
        except json.JSONDecodeError:
            return None
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("name"), str)
            or not isinstance(call.get("arguments", {}), dict)
        ):
            return None
        arguments = json.dumps(call.get("arguments", {}), ensure_ascii=False)
        calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": call["name"], "arguments": arguments}})  # fmt: skip
    return text[:start].strip(), calls


def native_conversation(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(messages in the tools API's shape, the tools) of a conversation in the Hermes rendering, for a
    template that renders tools itself; None when the messages are not one (no Hermes system message).
    Call arguments are objects (what HF templates expect) and call ids are numbered (deterministic)."""
    system = messages[0]["content"] if messages and messages[0].get("role") == "system" else ""
    head = system.find(HERMES_HEAD)
    if head < 0:
        return None
    listed = system[head + len(HERMES_HEAD) :].split("\n</tools>")[0]
    tools = [json.loads(line) for line in listed.splitlines() if line.strip()]
    out: list[dict[str, Any]] = [{"role": "system", "content": system[:head].strip()}] if system[:head].strip() else []
    for k, m in enumerate(messages[1:], 1):
        content = m.get("content") or ""
        split = split_calls(content) if m["role"] == "assistant" else None
        if split is not None:
            calls = [{"id": f"call_{k}_{i}", "type": "function",
                      "function": {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}}
                     for i, c in enumerate(split[1])]  # fmt: skip
            out.append({"role": "assistant", "content": split[0], "tool_calls": calls})
        elif (
            m["role"] == "user" and content.startswith(RESPONSE_OPEN + "\n") and content.endswith("\n" + RESPONSE_CLOSE)
        ):
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": f"call_{k - 1}_0",
                    "content": content[len(RESPONSE_OPEN) + 1 : -len(RESPONSE_CLOSE) - 1],
                }
            )
        else:
            out.append(dict(m))
    return out, tools


def renders_calls(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders tools itself, writing a call in the `<tool_call>`
    syntax fireact parses (probed once: a search call must read back as itself), rendering a turn the
    same whether or not later turns follow (training text = prompt + reply), and a tool's result."""
    cached = getattr(tokenizer, "_fireact_renders_calls", None)
    if cached is not None:
        return cached
    probe = [{"role": "user", "content": "Q"},
             {"role": "assistant", "content": "T", "tool_calls": [{"id": "call_0", "type": "function",
              "function": {"name": "search", "arguments": {"query": "probe query"}}}]},
             {"role": "tool", "tool_call_id": "call_0", "content": "probe result"}]  # fmt: skip
    template = getattr(tokenizer, "chat_template", None)

    def render(msgs: list[dict[str, Any]], tools: list | None, gen: bool) -> str:
        return tokenizer.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=gen)

    ok = False
    if isinstance(template, str) and "tools" in template:
        try:
            asked, answered = render(probe[:1], TOOLS, True), render(probe[:2], TOOLS, False)
            after = render(probe, TOOLS, True)
            reply = split_calls(answered[len(asked) :]) if answered.startswith(asked) else None
            ok = (
                TOOLS[0]["function"]["description"] in asked
                and TOOLS[0]["function"]["description"] not in render(probe[:1], None, True)
                and reply is not None
                and [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in reply[1]]
                == [("search", {"query": "probe query"})]
                and after.startswith(answered)  # a turn renders alike once others follow
                and "probe result" in after
            )
        except Exception:  # noqa: BLE001  (a template that cannot render the probe does not render tools)
            ok = False
    tokenizer._fireact_renders_calls = ok
    return ok
