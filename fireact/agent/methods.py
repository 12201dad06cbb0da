"""IO / CoT / ReAct / Reflexion as one step machine: prompt -> completion -> (tool) -> next prompt.

An Episode never raises on model output: a missing or malformed action, an unknown tool, a tool
or backend failure and running out of rounds all end it with a recorded `end_reason`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from fireact.agent.prompts import REFLECT_REQUEST
from fireact.data.prompt_style import Prompt, PromptStyle
from fireact.data.protocols import get_protocol
from fireact.data.tasks import Example
from fireact.data.token_log import TokenTurn
from fireact.data.tool_calls import FINISH
from fireact.data.trajectory import METHODS, Trajectory, Turn
from fireact.env.environment import Environment
from fireact.errors import FireactError
from fireact.lm.base import Completion
from fireact.tools.base import ToolError
from fireact.tools.function import Tool, is_error

REFLECT_AT = (6, 10)  # Reflexion asks for a self-reflection before these rounds (1-based)


@dataclass
class MethodSpec:
    stop: list[str]
    max_tokens: int
    stop_after_action: bool


def parse_direct_answer(text: str) -> str:
    """IO prompting: the answer is a finish[...] if the model wrote one, else its first line."""
    bare = re.search(r"finish\s*\[([^\]\n]*)\]", text, re.IGNORECASE)
    if bare:
        return bare.group(1).strip()
    line = text.strip().splitlines()[0] if text.strip() else ""
    return re.sub(r"^\s*(Answer|Final answer)\s*:\s*", "", line, flags=re.IGNORECASE).strip()


def method_spec(method: str, max_tokens: int | None = None, protocol: str = "react") -> MethodSpec:
    """Where a step's generation stops: the end of the ReAct action line, or the tool call's close tag."""
    if method not in METHODS:
        raise FireactError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method == "io":
        return MethodSpec(["\n"], max_tokens or 48, False)
    speaks = get_protocol(protocol)
    return MethodSpec(list(speaks.stop), max_tokens or (384 if method == "cot" else 160), speaks.stop_after_action)


@dataclass
class ToolCall:
    tool: Tool
    arguments: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)  # the episode's, for a stateful tool

    def run(self) -> tuple[str | None, str | None]:
        """(observation, None), or (None, error) when the tool could not answer at all."""
        try:
            return self.tool(self.arguments, self.state), None
        except ToolError as e:
            return None, str(e)


_FINISH_PARAMETERS = {"finish": FINISH["function"]["parameters"]}  # all CoT may call


@dataclass
class Episode:
    """One episode in an environment: its tools are the ones the agent may call (and is shown)."""

    example: Example
    env: Environment
    method: str
    style: PromptStyle = field(default_factory=PromptStyle)
    prefix: str | list[dict[str, str]] = ""  # few-shot instruction + exemplars ("" for zero-shot)
    max_turns: int = 11
    turns: list[Turn] = field(default_factory=list)
    done: bool = False
    end_reason: str = ""
    prediction: str | None = None
    meta: dict[str, Any] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
    started: float = field(default_factory=time.monotonic)
    token_turns: list[TokenTurn] | None = None  # set by the rollout engine when it records tokens
    state: dict[str, Any] = field(default_factory=dict)  # what stateful tools keep across the episode's calls

    def _reflect_now(self) -> bool:
        return self.method == "reflexion" and len(self.turns) + 1 in REFLECT_AT

    def prompt(self) -> Prompt:
        note = REFLECT_REQUEST if self._reflect_now() else None
        return self.style.prompt(
            self.example.question, self.turns, self.prefix, note, self.env.schemas(), self.env.instructions
        )

    def _end(self, reason: str, prediction: str | None = None) -> None:
        self.done, self.end_reason, self.prediction = True, reason, prediction

    def feed(self, c: Completion) -> None:
        """Consume the model's completion for the current round; call the tool inline; maybe end."""
        call = self.act(c)
        if call is not None:
            self.observe(*call.run())

    def act(self, c: Completion) -> ToolCall | None:
        """Consume the completion up to the tool call it asks for (None when the episode ended or
        finished). The caller runs the call where it likes (the engine: off the decode path) and
        hands the result to `observe`."""
        self.meta["prompt_tokens"] += c.prompt_tokens
        self.meta["completion_tokens"] += c.completion_tokens
        self.meta["cost_usd"] += c.cost_usd
        if c.error is not None:
            self.meta["error"] = c.error
            self._end("error")
            return None
        if self.method == "io":
            answer = parse_direct_answer(c.text)
            if not answer:
                self._end("no_action")
                return None
            self.turns.append(Turn("", f"finish[{answer}]", None))
            self._end("finish", answer)
            return None
        allowed = _FINISH_PARAMETERS if self.method == "cot" else self.env.parameters()
        step = self.style.speaks.parse(c.text, allowed)
        thought = step.thought
        if self._reflect_now():
            self.meta.setdefault("reflections", []).append(len(self.turns) + 1)
            if not thought.lower().startswith("reflection"):
                thought = f"Reflection: {thought}"
        call = (None, None) if step.error else (step.tool, step.arguments)
        self.turns.append(Turn(thought, step.action, step.message, *call))  # a malformed call's error message
        if step.error:
            self._end(step.error)
            return None
        if step.tool == "finish":
            self._end("finish", step.argument)
            return None
        return ToolCall(self.env.toolset()[step.tool], step.arguments or {}, self.state)

    def observe(self, observation: str | None, error: str | None = None) -> None:
        """The result of the tool call `act` asked for."""
        if error is not None:
            self.meta["error"] = error
            self._end("error")
            return
        self.turns[-1].observation = observation
        if is_error(observation):  # a tool that failed or hung: the agent reads why and goes on
            self.meta["tool_errors"] = self.meta.get("tool_errors", 0) + 1
        if self.method == "cot" or len(self.turns) >= self.max_turns:
            self._end("max_turns")

    def to_trajectory(self, source: str = "", extra_meta: dict[str, Any] | None = None) -> Trajectory:
        gold = self.example.answer
        s = self.env.score(self.prediction, gold)
        meta = {**self.meta, "seconds": round(time.monotonic() - self.started, 3), **(extra_meta or {})}
        meta["cost_usd"] = round(meta["cost_usd"], 6)
        t = Trajectory(
            question=self.example.question,
            answer=gold,
            task=self.env.name,
            method=self.method,
            turns=self.turns,
            prediction=self.prediction,
            em=s.em,
            f1=s.f1,
            end_reason=self.end_reason or "max_turns",
            id=self.example.id,
            source=source,
            meta=meta,
            token_turns=self.token_turns,
            tools=self.env.schemas(),
            instructions=self.env.instructions,
        )
        t.reward = self.env.reward_of(t)
        return t
