"""Build the offline search snapshot (query -> Google snippet) from FireAct's own trajectories.

Every `search[query]` in the GPT-4 fine-tuning data and in the released dev rollouts was answered
by the real Google search tool, so those (query, observation) pairs are a replayable cache of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from fireact.data.fireact_format import read_fireact_file
from fireact.data.trajectory import parse_action

SOURCES = {"finetune": "fireact-finetune", "trajs": "fireact-dev-rollouts"}


def snapshot_rows(files: Iterable[Path], source: str) -> list[dict[str, str]]:
    rows, seen = [], set()
    for path in files:
        for traj in read_fireact_file(path):
            for turn in traj.turns:
                action = parse_action(turn.action)
                if not action or action[0] != "search" or not turn.observation:
                    continue
                query = action[1]
                if query and query not in seen:
                    seen.add(query)
                    rows.append({"query": query, "snippet": turn.observation, "source": source})
    return rows


def build_snapshot(data_dir: Path, out: Path | None = None) -> Path:
    """Write search_snapshot.jsonl into the data dir; the first snippet seen for a query wins."""
    data_dir = Path(data_dir)
    out = out or data_dir / "search_snapshot.jsonl"
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for folder, source in SOURCES.items():
        files = sorted(p for p in (data_dir / folder).rglob("*") if p.suffix in (".json", ".jsonl"))
        for row in snapshot_rows(files, source):
            if row["query"] not in seen:
                seen.add(row["query"])
                rows.append(row)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(out)
    return out
