"""Build the offline search snapshot (query -> Google snippet) from the FireAct release itself.

Every `search[query]` in FireAct's GPT-4 fine-tuning trajectories and in its own dev rollouts was
answered by a real Google (SerpAPI) call; the recorded observation is that snippet. Collected,
they make an offline search engine over the questions FireAct studied.
"""

from __future__ import annotations

import json
from pathlib import Path

from fireact.data.fireact_format import read_fireact_file
from fireact.data.paths import write_lines_atomic
from fireact.data.react_grammar import parse_action
from fireact.errors import FireactError

# source label -> glob inside the data dir, in the order records are collected
SOURCES = {"fireact-finetune": "finetune/gpt_format/*.jsonl", "fireact-dev-rollouts": "trajs/*.json"}


def snapshot_records(data_dir: Path) -> list[dict[str, str]]:
    """Unique (query, snippet, source) records; the first snippet seen for a query wins."""
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    for source, pattern in SOURCES.items():
        for path in sorted(Path(data_dir).glob(pattern)):
            for traj in read_fireact_file(path):
                for turn in traj.turns:
                    parsed = parse_action(turn.action)
                    if not parsed or parsed[0] != "search" or turn.observation is None:
                        continue
                    query, snippet = parsed[1], turn.observation.strip()
                    if not query or not snippet or query in seen:
                        continue
                    seen.add(query)
                    out.append({"query": query, "snippet": snippet, "source": source})
    return out


def build_snapshot(data_dir: Path, out: Path | None = None) -> tuple[Path, int]:
    records = snapshot_records(Path(data_dir))
    if not records:
        raise FireactError(f"no search observations found under {data_dir} (finetune/gpt_format, trajs)")
    out = Path(out) if out is not None else Path(data_dir) / "search_snapshot.jsonl"
    return out, write_lines_atomic(out, (json.dumps(r, ensure_ascii=False) for r in records))
