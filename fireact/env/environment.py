"""An agent's world as one object: its examples, its tools, its reward.

FireAct's own worlds (the paper's tasks with a search tool, the wiki world) are environments, and so
is anything a user writes: a `load_environment(**kwargs)` that returns
`Environment(name, examples, tools, reward)`. Every place that plays episodes (eval, generate, the
live-rollout callback, GRPO, expert iteration) takes one, and the records it writes carry its tools
and instructions, so training renders exactly the prompt the agent saw.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fireact.data.paths import read_jsonl
from fireact.data.scoring import exact_match, f1_score
from fireact.data.tasks import Example, Score, Task
from fireact.data.tool_calls import FINISH, TOOLS
from fireact.data.trajectory import Trajectory, read_trajectories
from fireact.errors import FireactError
from fireact.tools.function import Tool
from fireact.tools.mcp import MCPServer

Reward = Callable[[Trajectory, dict[str, Any]], float]


@dataclass
class Environment:
    """Examples, tools and a reward.

    examples: dicts (or a JSONL path, or a `datasets` split) with `question`, optional `answer` and
        `id`; every other key is kept and handed to the reward.
    tools: typed, Google-style documented Python functions, `Tool` objects or `MCPServer`s.
        `finish[answer]` is always there and always ends the episode.
    reward: `reward(trajectory, example) -> float`; default: exact match of the final answer.
    instructions: text the agent reads before the question (a system message).
    max_turns: agent steps per episode (default: the run's).
    few_shot: trajectories (or a trajectory file) that `--few-shot K` draws exemplars from.
    task: the scorer of the exact match and F1 (a built-in task's; default: HotpotQA's, free-form).
    """

    name: str
    examples: Any
    tools: list[Any] = field(default_factory=list)
    reward: Reward | None = None
    instructions: str | None = None
    max_turns: int | None = None
    few_shot: Any = None
    task: Task | None = None
    _rows: dict[str, dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _tools: dict[str, Tool] | None = field(default=None, init=False, repr=False)
    _schemas: tuple[list[dict[str, Any]] | None] | None = field(default=None, init=False, repr=False)
    _parameters: dict[str, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise FireactError(f"environment name must be a non-empty string without '/', got {self.name!r}")
        if self.reward is not None and not callable(self.reward):
            raise FireactError(f"environment {self.name}: reward must be a function (trajectory, example) -> float")
        if self.max_turns is not None and (not isinstance(self.max_turns, int) or self.max_turns < 1):
            raise FireactError(f"environment {self.name}: max_turns must be a positive integer, got {self.max_turns!r}")
        if not isinstance(self.tools, (list, tuple)):
            raise FireactError(f"environment {self.name}: tools must be a list, got {type(self.tools).__name__}")

    # -- examples -----------------------------------------------------------------------------------
    def rows(self) -> dict[str, dict[str, Any]]:
        """id -> example row (read once; each checked, named by its file line or index)."""
        if self._rows is None:
            self._rows = _read_rows(self.examples, self.name)
        return self._rows

    def example_list(self) -> list[Example]:
        return [Example(i, r["question"], r.get("answer"), self.name) for i, r in self.rows().items()]

    def exemplars(self) -> list[Trajectory]:
        """The few-shot pool (`few_shot`: trajectories or a trajectory file), filed under this environment."""
        if self.few_shot is None:
            raise FireactError(f"environment {self.name} has no few_shot trajectories: --few-shot needs them")
        pool = read_trajectories(self.few_shot) if isinstance(self.few_shot, (str, os.PathLike)) else self.few_shot
        out = [t if isinstance(t, Trajectory) else Trajectory.from_dict(t) for t in pool]
        return [replace(t, task=self.name) for t in out]

    def adopt(self, records: list[Trajectory]) -> list[Trajectory]:
        """Records written without this environment's tools (by another program, an import) filed under
        it with its tools and instructions, so they render as its agent saw them."""
        schemas = self.schemas()
        return [replace(t, task=self.name, tools=t.tools or schemas, instructions=t.instructions or self.instructions)
                for t in records]  # fmt: skip

    # -- tools --------------------------------------------------------------------------------------
    def toolset(self) -> dict[str, Tool]:
        """name -> Tool, finish excluded (the agent's answer, never run); MCP servers start here."""
        if self._tools is None:
            tools: dict[str, Tool] = {}
            for item in self.tools:
                for tool in _as_tools(item, self.name):
                    if tool.name in tools or tool.name == "finish":
                        what = "finish is fireact's own answer action" if tool.name == "finish" else "two tools"
                        raise FireactError(f"environment {self.name}: {what} named {tool.name!r}")
                    tools[tool.name] = tool
            self._tools = tools
        return self._tools

    def schemas(self) -> list[dict[str, Any]] | None:
        """The tools the agent is shown (finish last); None when they are FireAct's own search and finish
        (so its records and prompts stay as they always were)."""
        if self._schemas is None:
            declared = [t.schema for t in self.toolset().values()] + [FINISH]
            self._schemas = (None if declared == TOOLS else declared,)
        return self._schemas[0]

    def parameters(self) -> dict[str, dict[str, Any]]:
        """name -> JSON-schema parameters of every tool the agent may call, finish first (read each step)."""
        if self._parameters is None:
            self._parameters = {"finish": FINISH["function"]["parameters"]}
            self._parameters |= {name: tool.parameters for name, tool in self.toolset().items()}
        return self._parameters

    def close(self) -> None:
        for item in self.tools:
            if isinstance(item, MCPServer):
                item.close()

    # -- reward -------------------------------------------------------------------------------------
    def score(self, prediction: str | None, answer: str | None) -> Score:
        """Exact match and F1 of a final answer (0 without a gold answer or a prediction)."""
        if answer is None or prediction is None:
            return Score(0.0, 0.0)
        if self.task is not None:
            return self.task.score(prediction, answer)
        return Score(exact_match(prediction, answer), f1_score(prediction, answer))

    def reward_of(self, trajectory: Trajectory) -> float | None:
        """The environment's own reward of a finished episode (None: the exact match is the reward);
        FireactError naming the example when the reward function fails or returns no number."""
        if self.reward is None:
            return None
        row = self.rows().get(trajectory.id, {"id": trajectory.id, "question": trajectory.question})
        try:
            value = self.reward(trajectory, dict(row))
        except Exception as e:  # noqa: BLE001  (the user's code: say where, with its own error)
            raise FireactError(
                f"environment {self.name}: the reward raised on example {trajectory.id!r}: {type(e).__name__}: {e}"
            ) from e
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise FireactError(
                f"environment {self.name}: the reward returned {value!r} ({type(value).__name__}) on example "
                f"{trajectory.id!r}; it must return a finite number"
            )
        return float(value)


def _as_tools(item: Any, env: str) -> list[Tool]:
    if isinstance(item, Tool):
        return [item]
    if isinstance(item, MCPServer):
        return item.start()
    if callable(item):
        try:
            return [Tool.from_function(item)]
        except FireactError as e:
            raise FireactError(f"environment {env}: {e}") from None
    raise FireactError(
        f"environment {env}: a tool must be a function, a fireact.Tool or a fireact.MCPServer, got {item!r}"
    )


def _read_rows(examples: Any, env: str) -> dict[str, dict[str, Any]]:
    """The examples as id -> row, from dicts, a JSONL path or a `datasets` split."""
    if isinstance(examples, (str, os.PathLike)):
        path = Path(examples)
        numbered = [(f"{path}:{lineno}", row) for lineno, row in read_jsonl(path, "examples file")]
    elif hasattr(examples, "column_names") and hasattr(examples, "__iter__"):  # a datasets split
        numbered = [(f"example {i}", dict(row)) for i, row in enumerate(examples)]
    elif isinstance(examples, (list, tuple)):
        numbered = [(f"example {i}", row) for i, row in enumerate(examples)]
    else:
        raise FireactError(f"environment {env}: examples must be a list of dicts, a JSONL path or a datasets split")
    rows: dict[str, dict[str, Any]] = {}
    for i, (where, row) in enumerate(numbered):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
            raise FireactError(f"environment {env}: {where}: an example needs a non-empty string `question`")
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, str):
            answer = json.dumps(answer) if isinstance(answer, (list, dict)) else str(answer)
        rid = str(row.get("id", i))
        if rid in rows:
            raise FireactError(f"environment {env}: {where}: id {rid!r} is used by two examples")
        rows[rid] = {**row, "id": rid, "answer": answer}
    if not rows:
        raise FireactError(f"environment {env}: no examples")
    return rows
