"""The one trajectory record every part of fireact reads and writes (JSONL on disk).

Every method (IO, CoT, ReAct, Reflexion) is stored as ReAct turns so that all can be mixed for
training: CoT is one turn whose action is finish, Reflexion keeps its reflections in thoughts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fireact.data.errors import FireactError
from fireact.data.paths import write_lines_atomic

SCHEMA_VERSION = 1
METHODS = ("io", "cot", "react", "reflexion")
# Why an episode ended; anything but "finish" is a format/runtime failure of the agent.
END_REASONS = ("finish", "max_turns", "no_action", "bad_action", "unknown_tool", "error")

_ACTION = re.compile(r"^\s*(\w+)\s*\[(.*)\]\s*$", re.DOTALL)


def question_key(question: str) -> str:
    """A question compared across files: case and whitespace do not matter."""
    return " ".join(question.lower().split())


def parse_action(action: str) -> tuple[str, str] | None:
    """`search[q]` -> ("search", "q"); None when the action is not `tool[argument]`."""
    m = _ACTION.match(action or "")
    return (m.group(1).lower(), m.group(2).strip()) if m else None


@dataclass
class Turn:
    thought: str
    action: str
    observation: str | None = None  # None for the final finish turn (no tool was called)


@dataclass
class Trajectory:
    question: str
    answer: str | None  # gold answer
    task: str
    method: str
    turns: list[Turn] = field(default_factory=list)
    prediction: str | None = None  # the argument of the final finish[...]
    reward: float = 0.0  # exact match of prediction against answer
    f1: float = 0.0
    end_reason: str = "finish"
    id: str = ""  # question id within the task split
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # teacher model, tokens, cost, seconds...
    version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        version = d.get("version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"schema version {version!r} is not supported (this fireact reads {SCHEMA_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}")
        missing = [k for k in ("question", "answer", "task", "method") if k not in d]
        if missing:
            raise ValueError(f"missing key(s) {', '.join(missing)}")
        if d["method"] not in METHODS:
            raise ValueError(f"method {d['method']!r} is not one of {', '.join(METHODS)}")
        if d.get("end_reason", "finish") not in END_REASONS:
            raise ValueError(f"end_reason {d['end_reason']!r} is not one of {', '.join(END_REASONS)}")
        if not isinstance(d["question"], str) or not d["question"].strip():
            raise ValueError("question must be a non-empty string")
        turns = d.get("turns", [])
        if not isinstance(turns, list):
            raise ValueError("turns must be a list")
        parsed = []
        for i, t in enumerate(turns):
            if (
                not isinstance(t, dict)
                or not {"thought", "action"} <= set(t)
                or set(t) - {"thought", "action", "observation"}
            ):
                raise ValueError(f"turn {i} must be an object with thought, action and optional observation")
            parsed.append(Turn(str(t["thought"]), str(t["action"]), t.get("observation")))
        return cls(**{**d, "turns": parsed})

    @property
    def finished(self) -> bool:
        return self.end_reason == "finish" and self.prediction is not None

    @property
    def num_actions(self) -> int:
        """The episode's turns as every summary counts them: steps that took an action."""
        return sum(1 for t in self.turns if t.action)


def read_trajectories(path: str | os.PathLike) -> list[Trajectory]:
    return list(iter_trajectories(path))


def iter_trajectories(path: str | os.PathLike) -> Iterator[Trajectory]:
    path = Path(path)
    if not path.is_file():
        raise FireactError(f"no such trajectory file: {path}")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Trajectory.from_dict(json.loads(line))
            except json.JSONDecodeError as e:
                raise FireactError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            except (ValueError, TypeError) as e:
                raise FireactError(f"{path}:{lineno}: bad trajectory record: {e}") from None


def write_trajectories(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> int:
    """Write atomically (temp file + rename) so an interrupted write never leaves half a file."""
    return write_lines_atomic(path, (t.to_json() for t in trajectories))


class TrajectoryAppender:
    """Appends records one at a time, durable on return (flush + fsync): resumable generation."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        self._f = self.path.open("a", encoding="utf-8")

    def _drop_torn_tail(self) -> None:
        # A SIGKILL mid-write can leave a last line without its newline: cut it off.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with self.path.open("r+b") as f:
                f.truncate(keep)

    def append(self, t: Trajectory) -> None:
        self._f.write(t.to_json() + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> TrajectoryAppender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class GenerationLog:
    """A trajectory file being generated, resumable after a kill: the kept records in `path`, and the
    (task, id) of every finished episode, kept or not, in `path.attempted`, so a resumed run with a
    filter (e.g. only successful) skips the dropped ones too. Both are durable on return."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.attempted = self.path.with_name(self.path.name + ".attempted")
        self._kept = TrajectoryAppender(self.path)  # first: drops a line torn by a kill
        self._side = self.attempted.open("a", encoding="utf-8")

    def done_ids(self, task: str) -> set[str]:
        ids = {t.id for t in iter_trajectories(self.path) if t.task == task} if self.path.is_file() else set()
        for line in self.attempted.read_text(encoding="utf-8").splitlines():
            name, _, qid = line.partition("\t")
            if name == task and qid:
                ids.add(qid)
        return ids

    def record(self, t: Trajectory, keep: bool) -> None:
        if keep:
            self._kept.append(t)
        self._side.write(f"{t.task}\t{t.id}\n")
        self._side.flush()
        os.fsync(self._side.fileno())

    def close(self) -> None:
        self._kept.close()
        self._side.close()
