"""Training sets in the formats other tools read: OpenAI chat fine-tuning JSONL, FireAct's alpaca
JSON, and a Hugging Face `datasets` folder; and reading such a folder back.

The OpenAI and alpaca files are written as FireAct released them (its gpt_format and alpaca_format),
so `fireact import` reads them back to the same trajectories: the text comes from the one renderer
(`prompt_style.conversation` / `react_lines`) and each episode ends with FireAct's
"Observation: Episode finished, reward = ..." line, which carries the reward and, through its
spelling, the method (FireAct's CoT generator wrote 1/0, ReAct and Reflexion True/False). A hosted
fine-tune trains the assistant messages only, so that last user message is never trained, as in
fireact's own mask. The `datasets` folder keeps every field of the record (gold answer, ids, meta)
beside a `messages` column that chat SFT trainers read as is.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from fireact.data import tool_calls
from fireact.data.paths import write_lines_atomic
from fireact.data.prompt_style import react_lines, training_turns
from fireact.data.protocols import get_protocol
from fireact.data.react_grammar import observation_text
from fireact.data.trajectory import Trajectory
from fireact.errors import FireactError

FORMATS = ("openai", "alpaca", "hf")


def reward_observation(traj: Trajectory) -> str:
    released = traj.meta.get("released_reward")
    if released is None:
        released = ("1" if traj.em > 0 else "0") if traj.method == "cot" else str(traj.em > 0)
    return f"Episode finished, reward = {released}"


def _ends_with_finish(traj: Trajectory) -> bool:
    return bool(traj.turns) and traj.finished


def openai_record(traj: Trajectory, protocol: str = "react") -> dict[str, Any]:
    """FireAct's gpt_format (user question, assistant Thought/Action, user Observation, ...), or in the
    tool-call protocol the OpenAI tools shape: `tools`, assistant `tool_calls`, `tool` results; the
    episode's reward line last, as FireAct's files end."""
    closing = reward_observation(traj) if _ends_with_finish(traj) else None
    return get_protocol(protocol).chat_record(
        traj.tools, traj.instructions, traj.question, training_turns(traj), closing
    )


def alpaca_record(traj: Trajectory) -> dict[str, str]:
    """FireAct's alpaca_format: the question as instruction, the ReAct lines as output."""
    output = react_lines(training_turns(traj))
    if _ends_with_finish(traj):
        output += observation_text(reward_observation(traj)) + "\n"
    return {"instruction": traj.question, "input": "", "output": output}


def hf_row(traj: Trajectory, protocol: str = "react") -> dict[str, Any]:
    """Every field of the record and the chat `messages` (in the tool-call protocol the tools API's
    shape). What varies in shape from row to row travels as JSON text, as Arrow columns must be one
    type: meta, each call's arguments, and the `tools` (as TRL's SFT reads them)."""
    record = openai_record(traj, protocol)
    row = traj.to_dict()
    row["turns"] = [
        {**t, "arguments": None if t["arguments"] is None else json.dumps(t["arguments"])} for t in row["turns"]
    ]
    tools = record.get("tools", traj.tools)
    row |= {"tools": None if tools is None else json.dumps(tools), "instructions": traj.instructions,
            "reward": traj.reward, "meta": json.dumps(traj.meta)}  # fmt: skip
    return {"messages": record["messages"], **row}


def write_training_set(trajs: list[Trajectory], out: str | os.PathLike, fmt: str, protocol: str = "react") -> Path:
    """Write atomically (a temp file or folder, then rename): an interrupted export leaves nothing half-written."""
    out = Path(out)
    if fmt == "openai":
        write_lines_atomic(out, (json.dumps(openai_record(t, protocol), ensure_ascii=False) for t in trajs))
    elif fmt == "alpaca":
        text = json.dumps([alpaca_record(t) for t in trajs], ensure_ascii=False, indent=1)
        write_lines_atomic(out, [text])
    elif fmt == "hf":
        from datasets import Dataset

        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        Dataset.from_list([hf_row(t, protocol) for t in trajs]).save_to_disk(str(tmp))
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    else:
        raise FireactError(f"unknown training-set format {fmt!r}: use one of {', '.join(FORMATS)}")
    return out


def is_hf_dataset_dir(path: Path) -> bool:
    return path.is_dir() and (path / "dataset_info.json").is_file()


_OPTIONAL = ("instructions", "reward", "token_turns")


def read_hf_dataset(path: str | os.PathLike) -> list[Trajectory]:
    """The trajectories of a folder written by `write_training_set(..., "hf")` (`load_from_disk`)."""
    from datasets import load_from_disk

    path = Path(path)
    try:
        ds = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise FireactError(f"{path}: not a datasets folder ({e})") from None
    return [_from_row(path, i, row) for i, row in enumerate(ds)]


def _from_row(path: Path, i: int, row: dict[str, Any]) -> Trajectory:
    tools = json.loads(row.get("tools") or "null")
    row = {k: v for k, v in row.items() if k not in ("messages", "tools") and not (k in _OPTIONAL and v is None)}
    try:
        row["meta"] = json.loads(row.get("meta") or "{}")
        row["turns"] = [{**t, "arguments": json.loads(t["arguments"]) if t.get("arguments") else None}
                        for t in row.get("turns") or []]  # fmt: skip
        row["tools"] = None if tools == tool_calls.TOOLS else tools
        return Trajectory.from_dict(row)
    except (ValueError, TypeError) as e:
        raise FireactError(f"{path}: row {i}: not a fireact trajectory ({e})") from None
