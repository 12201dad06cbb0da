"""The one trajectory record every part of fireact reads and writes (JSONL on disk).

Every method (IO, CoT, ReAct, Reflexion) is stored as ReAct turns so that all can be mixed for
training: CoT is one turn whose action is finish, Reflexion keeps its reflections in thoughts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fireact.data.paths import json_value, not_utf8, unreadable, write_lines_atomic
from fireact.data.react_grammar import default_call
from fireact.data.token_log import TokenTurn
from fireact.errors import FireactError

# 2: the exact match is `em` (version 1 called it `reward`; read as em), token turns may be recorded
# 3: a step records its structured call (`tool`, JSON `arguments`); a record may carry the tools its agent
#    was shown, its environment's instructions and reward (versions 1 and 2 read: `search[q]` is search {query})
SCHEMA_VERSION = 3
READS = (1, 2, 3)
METHODS = ("io", "cot", "react", "reflexion")
# Why an episode ended; anything but "finish" is a format/runtime failure of the agent.
END_REASONS = ("finish", "max_turns", "no_action", "bad_action", "unknown_tool", "error")

# Far beyond any real question or step (FireAct's longest are a few KB): a longer text field is a
# broken or hostile file, refused where it is read rather than tokenized and trained on.
MAX_TEXT_CHARS = 1_000_000
# key -> (accepted types, as the message says them), checked on read so that a record of the wrong
# shape is named with its file and line instead of failing later in scoring or training
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "answer": ((str, type(None)), "a string or null"),
    "task": ((str,), "a string"),
    "prediction": ((str, type(None)), "a string or null"),
    "em": ((int, float), "a number"),
    "f1": ((int, float), "a number"),
    "end_reason": ((str,), "a string"),
    "id": ((str,), "a string"),
    "source": ((str,), "a string"),
    "meta": ((dict,), "an object"),
    "tools": ((list, type(None)), "a list of tool schemas or null"),
    "instructions": ((str, type(None)), "a string or null"),
    "reward": ((int, float, type(None)), "a number or null"),
}
_TURN_KEYS = {"thought", "action", "observation", "tool", "arguments"}


def question_key(question: str) -> str:
    """A question compared across files: case and whitespace do not matter."""
    return " ".join(question.lower().split())


def check_text_sizes(question: str, turns: list[Turn]) -> None:
    """ValueError when the question or a step's text exceeds MAX_TEXT_CHARS."""
    texts = [("question", question)]
    for i, t in enumerate(turns):
        texts += [
            (f"turn {i} thought", t.thought),
            (f"turn {i} action", t.action),
            (f"turn {i} observation", t.observation),
        ]
    for name, text in texts:
        text = text or ""
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"{name} is {len(text):,} characters long; fireact reads at most {MAX_TEXT_CHARS:,}")


@dataclass
class Turn:
    """One agent step: its thought, its action as ReAct text, what the tool answered, and the call as
    structure (`tool` and JSON `arguments`; both None for a step that made no well-formed call). A
    step built from ReAct text alone (`search[q]`) gets its call from the text."""

    thought: str
    action: str
    observation: str | None = None  # None for the final finish turn (no tool was called)
    tool: str | None = None
    arguments: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.tool is None and self.action:
            call = default_call(self.action)
            if call is not None:
                self.tool, self.arguments = call


@dataclass
class Trajectory:
    """One episode of one agent on one question, whatever made it (a teacher, FireAct's release, a live
    rollout, `fireact eval`): the record every part of fireact reads and writes, one JSON line on disk.
    Training mixes records of any method and environment because each is stored as ReAct turns."""

    question: str
    answer: str | None  # gold answer
    task: str
    method: str
    turns: list[Turn] = field(default_factory=list)
    prediction: str | None = None  # the argument of the final finish[...]
    em: float = 0.0  # exact match of prediction against answer (the task's scorer); RL rewards derive from it
    f1: float = 0.0
    end_reason: str = "finish"
    id: str = ""  # question id within the task split
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # teacher model, tokens, cost, seconds...
    version: int = SCHEMA_VERSION
    # the exact tokens the model saw and sampled, when the rollout recorded them (on-policy training)
    token_turns: list[TokenTurn] | None = None
    # the tools the agent was shown (tools-API schemas, finish included); None: FireAct's search and finish
    tools: list[dict[str, Any]] | None = None
    instructions: str | None = None  # the environment's instructions before the question, if any
    reward: float | None = None  # the environment's own reward; None: the exact match is the reward

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON values; the optional fields only where set."""
        d = asdict(self)
        for key in ("token_turns", "tools", "instructions", "reward"):
            if d[key] is None:
                del d[key]
        return d

    @property
    def score(self) -> float:
        """What the episode earned: the environment's reward, else its exact match."""
        return self.em if self.reward is None else self.reward

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        version = d.get("version", 1 if "reward" in d else SCHEMA_VERSION)
        if version not in READS or isinstance(version, bool):
            raise ValueError(f"schema version {version!r} is not supported (this fireact reads {READS})")
        if version == 1:  # the exact match was called reward
            d = {k if k != "reward" else "em": v for k, v in d.items()}
        d = {**d, "version": SCHEMA_VERSION}
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
        for key, (types, said) in _TYPES.items():
            if key in d and (not isinstance(d[key], types) or isinstance(d[key], bool)):
                raise ValueError(f"{key} must be {said}, got {type(d[key]).__name__}")
        turns = d.get("turns", [])
        if not isinstance(turns, list):
            raise ValueError("turns must be a list")
        parsed = []
        for i, t in enumerate(turns):
            if not isinstance(t, dict) or not {"thought", "action"} <= set(t) or set(t) - _TURN_KEYS:
                raise ValueError(
                    f"turn {i} must be an object with thought, action and optional observation, tool, arguments"
                )
            if not isinstance(t["thought"], str) or not isinstance(t["action"], str):
                raise ValueError(f"turn {i}: thought and action must be strings")
            for key, types, said in (("observation", str, "a string"), ("tool", str, "a string"),
                                     ("arguments", dict, "an object")):  # fmt: skip
                if not isinstance(t.get(key), (types, type(None))):
                    raise ValueError(f"turn {i}: {key} must be {said} or null, got {type(t[key]).__name__}")
            parsed.append(Turn(t["thought"], t["action"], t.get("observation"), t.get("tool"), t.get("arguments")))
        check_text_sizes(d["question"], parsed)
        tokens = d.get("token_turns")
        if tokens is not None:
            if not isinstance(tokens, list):
                raise ValueError("token_turns must be a list")
            try:
                tokens = [TokenTurn.from_dict(t) for t in tokens]
            except ValueError as e:
                raise ValueError(f"token_turns: {e}") from None
        return cls(**{**d, "turns": parsed, "token_turns": tokens})

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
    if not path.is_file() and not path.is_dir():
        raise FireactError(f"no such trajectory file: {path}")
    try:
        f = path.open(encoding="utf-8")
    except OSError as e:
        raise unreadable(path, e, "trajectory file") from None
    with f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json_value(line, path, lineno)
                try:
                    yield Trajectory.from_dict(row)
                except (ValueError, TypeError) as e:
                    raise FireactError(f"{path}:{lineno}: bad trajectory record: {e}") from None
        except UnicodeDecodeError:
            raise not_utf8(path) from None


def write_trajectories(path: str | os.PathLike, trajectories: Iterable[Trajectory]) -> int:
    """Write atomically (temp file + rename) so an interrupted write never leaves half a file."""
    return write_lines_atomic(path, (t.to_json() for t in trajectories))


class TrajectoryAppender:
    """Appends records one at a time, durable on return (flush + fsync): resumable generation."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise FireactError(f"{self.path}: is a directory, not a trajectory file")
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
        self._side: Any = None  # opened at the first record: a resume that stops on a bad file adds nothing

    def done_ids(self, task: str) -> set[str]:
        ids = {t.id for t in iter_trajectories(self.path) if t.task == task} if self.path.is_file() else set()
        if not self.attempted.is_file():
            return ids
        try:
            attempted = self.attempted.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise not_utf8(self.attempted) from None
        for line in attempted.splitlines():
            name, _, qid = line.partition("\t")
            if name == task and qid:
                ids.add(qid)
        return ids

    def record(self, t: Trajectory, keep: bool) -> None:
        if keep:
            self._kept.append(t)
        if self._side is None:
            self._side = self.attempted.open("a", encoding="utf-8")
        self._side.write(f"{t.task}\t{t.id}\n")
        self._side.flush()
        os.fsync(self._side.fileno())

    def close(self) -> None:
        self._kept.close()
        if self._side is not None:
            self._side.close()
