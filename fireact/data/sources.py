"""Training sources: trajectory JSONL, FireAct release files or a gateway's recording directory,
labelled with task/method, hashed."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from fireact.data.fireact_format import file_task, label_tasks, read_any, read_fireact_file
from fireact.data.recordings import RECORD_FILE, is_recording, read_recording
from fireact.data.rewards import rewarded
from fireact.data.tasks import TASKS
from fireact.data.training_formats import is_hf_dataset_dir
from fireact.data.trajectory import Trajectory
from fireact.errors import FireactError


def task_questions(root: Path) -> dict[str, set[str]]:
    """Known questions per task, for labelling (splits missing from the data dir are skipped).

    Besides the task splits, FireAct's single-task training file (finetune/alpaca_format/TASK.json)
    names the task of every question in it: HotpotQA's training questions are only there.
    """
    out: dict[str, set[str]] = {}
    for name, task in TASKS.items():
        qs: set[str] = set()
        for split in task.splits:
            try:
                qs |= {e.question for e in task.load(root, split)}
            except FireactError:
                continue
        single = root / "finetune" / "alpaca_format" / f"{name}.json"
        if single.is_file():
            qs |= {t.question for t in read_fireact_file(single)}
        out[name] = qs
    return out


def sha256_file(path: Path) -> str:
    """Of the file, or of a folder's files (relative names and contents, in sorted order)."""
    h = hashlib.sha256()
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def resolve_source(source: str | Path, data_dir: Path | None) -> Path:
    """As given if it exists, else relative to the data dir (a file, or an exported `datasets` folder)."""
    path = Path(source).expanduser()
    if path.is_file() or is_hf_dataset_dir(path) or is_recording(path):
        return path
    if data_dir is not None and not path.is_absolute() and (data_dir / path).is_file():
        return data_dir / path
    where = f" (nor under {data_dir})" if data_dir is not None else ""
    raise FireactError(f"training source {source} not found{where}")


@dataclass
class Source:
    path: Path
    sha256: str
    trajectories: list[Trajectory]


def load_source(path: Path, known_questions: dict[str, set[str]] | None = None, task: str | None = None) -> Source:
    """Read one file; records without a task (FireAct files) get `task`, or an inferred one. A gateway's
    recording directory gives its rewarded episodes (reward >= 1), as FireAct keeps a teacher's."""
    if is_recording(path):
        records = [t for t in read_recording(path).trajectories if rewarded(t)]
        print(f"{path}: {len(records)} rewarded trajectories kept for training", file=sys.stderr)
        return Source(path, sha256_file(path / RECORD_FILE), records)
    records = read_any(path)
    if any(not r.task for r in records):
        label_tasks(records, known_questions or {}, task or file_task(path, list(TASKS)))
    return Source(path, sha256_file(path), records)
