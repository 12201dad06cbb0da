"""Any tool an agent calls: a name, a description, JSON-schema parameters and a function.

A plain Python function becomes a `Tool` through `transformers.utils.get_json_schema` (type hints and
a Google-style docstring, the helper HF chat templates use), so the schema a model is shown is the one
its chat template would render. Calls are checked against that schema with `jsonschema` before the
function runs: a call the model got wrong is a format error the agent reads, never an exception.
A tool that raises answers with its error text, one that hangs is cut at `timeout` seconds, and every
observation is bounded, so no tool can stall or flood an episode.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fireact.data.tool_calls import TOOLS, schema_error
from fireact.errors import FireactError
from fireact.tools.base import ToolError

MAX_OBSERVATION_CHARS = 4_000
TIMEOUT_S = 30.0


@dataclass
class Tool:
    """A callable the agent may use. `fn(**arguments)` returns the observation (a string as it is, any
    other value as JSON).

    `blocking_io`: the rollout engine runs it on its tool threads (True for anything a user wrote: it
    may wait on a disk, a process or the network); the built-in searches set it as they need.
    `guarded`: run it on its own thread with `timeout` and answer its exceptions as text (a user's
    tool); the built-in searches are trusted and run inline. Either way a `ToolError` (the tool could
    not answer at all: a replay cache miss, a dead MCP server) ends the episode with `error`.
    `stateful`: `fn` also takes `state`, a dict of the episode's own that lives across its calls (the
    page a `lookup` reads on); tools are shared by every episode in flight, so state lives there.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout: float = TIMEOUT_S
    max_chars: int = MAX_OBSERVATION_CHARS
    blocking_io: bool = True
    guarded: bool = True
    stateful: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise FireactError(f"tool name {self.name!r} must be an identifier (letters, digits, _)")
        problem = schema_error(self.parameters)
        if problem:
            raise FireactError(f"tool {self.name}: {problem}")

    @classmethod
    def from_function(cls, fn: Callable[..., Any], **kw: Any) -> Tool:
        """A tool from a typed, Google-style documented function (its schema by `get_json_schema`); a
        parameter named `state` is the episode's state, never shown to the model."""
        from transformers.utils import get_json_schema

        name = getattr(fn, "__name__", repr(fn))
        try:
            schema = get_json_schema(fn)["function"]
        except Exception as e:  # noqa: BLE001  (transformers raises its own parsing exceptions)
            raise FireactError(f"tool {name}: {e} (a tool needs type hints and a Google-style docstring)") from None
        params = schema["parameters"]
        stateful = "state" in inspect.signature(fn).parameters
        if stateful:
            props = {k: v for k, v in params.get("properties", {}).items() if k != "state"}
            required = [k for k in params.get("required", []) if k != "state"]
            params = {"type": "object", "properties": props, **({"required": required} if required else {})}
        return cls(schema["name"], schema.get("description", ""), params, fn, stateful=stateful, **kw)

    @property
    def schema(self) -> dict[str, Any]:
        """The tool as the OpenAI tools API and HF chat templates declare it."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}  # fmt: skip

    def __call__(self, arguments: dict[str, Any], state: dict[str, Any] | None = None) -> str:
        """The observation: the function's answer, or its error text; bounded; cut at `timeout`."""
        if self.stateful:
            arguments = {**arguments, "state": {} if state is None else state}
        if not self.guarded:
            return _text(self.fn(**arguments))
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["value"] = self.fn(**arguments)
            except ToolError as e:
                box["fatal"] = e
            except Exception as e:  # noqa: BLE001  (a user's tool may raise anything: the agent reads it)
                box["error"] = f"Error: {self.name} failed: {type(e).__name__}: {e}"

        worker = threading.Thread(target=call, name=f"fireact-tool-{self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():  # a thread cannot be killed: it is left behind, daemon, and never read
            return f"Error: {self.name} did not answer within {self.timeout:g} s."
        if "fatal" in box:
            raise box["fatal"]
        text = box.get("error") or _text(box.get("value"))
        return text if len(text) <= self.max_chars else text[: self.max_chars] + " [...]"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def is_error(observation: str | None) -> bool:
    """Whether an observation is a tool's error answer (a failed, hung or mis-called tool)."""
    return bool(observation) and observation.startswith("Error: ")


def search_tool(search: Callable[[str], str], name: str = "search") -> Tool:
    """A built-in search (`query -> str`) as a Tool, run inline as before."""
    spec = TOOLS[0]["function"]
    return Tool(name, spec["description"], spec["parameters"], lambda query: search(query),
                blocking_io=getattr(search, "blocking_io", False), guarded=False)  # fmt: skip
