"""Episodes a recording gateway wrote (`fireact serve --record DIR`) as fireact trajectories.

The gateway appends one JSON line per finished episode to DIR/episodes.jsonl: every chat call the
agent program made (the messages and tools it sent, the assistant message it got, and, when a local
model answered, the exact prompt ids, sampled ids and their log-probs), its reward, and whether it was
closed or abandoned. Here each episode becomes trajectories in the tool-call protocol, with the
program's tool schemas and system text kept:

- a call whose messages continue the previous call's conversation (its messages, then the answer it
  got) extends one trajectory; a conversation the program edited, truncated, or whose system prompt
  changed starts another (as verl's and TRL's multi-turn fixes split where the prefix breaks), so
  no trajectory claims the model saw text it never saw;
- an assistant message with several tool calls becomes one step per call, each with its own result;
- the sampled ids, when recorded, are the trained ids (`token_turns`, token-exact); else the text is
  rendered through the training template.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fireact.data.token_log import TokenTurn, start_turn
from fireact.data.tool_calls import system_text, turns_from_openai
from fireact.data.trajectory import Trajectory
from fireact.errors import FireactError

RECORD_FILE = "episodes.jsonl"


def is_recording(path: Path) -> bool:
    return path.is_dir() and (path / RECORD_FILE).is_file()


@dataclass
class Recording:
    trajectories: list[Trajectory]
    counts: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        c = self.counts
        return (f"{c['episodes']} episodes ({c['closed']} closed, {c['unscored']} unscored) -> "
                f"{len(self.trajectories)} trajectories; {c['multi_call']} messages with several tool calls split "
                f"into steps, {c['edited']} edited or truncated conversations and {c['system_changed']} system prompt "
                f"changes started a new trajectory; {c['torn']} torn lines skipped, {c['unreadable']} episodes "
                "unreadable")  # fmt: skip


def read_recording(path: str | Path, quiet: bool = False) -> Recording:
    """The trajectories of a recording directory (or its episodes.jsonl). A line that is not JSON (a
    write cut by a crash) is reported with its line number and skipped; nothing else is lost."""
    path = Path(path)
    file = path / RECORD_FILE if path.is_dir() else path
    if not file.is_file():
        raise FireactError(f"{path}: no {RECORD_FILE} here (is it a `fireact serve --record` directory?)")
    out = Recording([])
    with file.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                out.counts["torn"] += 1
                print(f"{file}:{n}: not a whole JSON line (a write cut by a crash?): skipped", file=sys.stderr)
                continue
            try:
                trajs, counts = episode_trajectories(record)
            except (ValueError, TypeError, KeyError) as e:
                out.counts["unreadable"] += 1
                print(f"{file}:{n}: episode skipped: {e}", file=sys.stderr)
                continue
            out.trajectories += trajs
            out.counts.update(counts)
    if not quiet:
        print(f"{path}: {out.summary()}", file=sys.stderr)
    return out


def _norm(m: dict[str, Any]) -> tuple:
    """A message as compared across calls: SDKs send an answer back with other ids, `""` for None
    content, or arguments re-serialized."""
    calls = tuple((c["function"]["name"], _arguments(c)) for c in m.get("tool_calls") or [])
    return m["role"], m.get("content") or "", calls


def _arguments(call: dict[str, Any]) -> str:
    raw = call["function"].get("arguments") or "{}"
    try:
        return json.dumps(json.loads(raw) if isinstance(raw, str) else raw, sort_keys=True)
    except json.JSONDecodeError:
        return raw


def segments(calls: list[dict[str, Any]], counts: Counter[str]) -> list[list[dict[str, Any]]]:
    """The calls in runs whose conversations continue one another (see the module docstring)."""
    runs: list[list[dict[str, Any]]] = []
    seen: list[tuple] = []  # the previous call's messages and answer, normalized
    for call in calls:
        now = [_norm(m) for m in call["messages"]]
        if runs and now[: len(seen)] == seen:
            runs[-1].append(call)
        else:
            if runs:
                previous = runs[-1][-1]["messages"]
                counts["system_changed" if system_text(previous) != system_text(call["messages"]) else "edited"] += 1
            runs.append([call])
        seen = now + [_norm(call["message"])]
    return runs


def one_call_per_step(messages: list[dict[str, Any]], counts: Counter[str]) -> list[dict[str, Any]]:
    """An assistant message with several tool calls as consecutive steps of one call each, each followed
    by its result (matched by tool_call_id, else in order)."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        calls = m.get("tool_calls") or [] if m["role"] == "assistant" else []
        if len(calls) < 2:
            out.append(m)
            i += 1
            continue
        counts["multi_call"] += 1
        results = []
        while i + 1 < len(messages) and messages[i + 1]["role"] == "tool":
            results.append(messages[i + 1])
            i += 1
        by_id = {r.get("tool_call_id"): r for r in results}
        for k, call in enumerate(calls):
            out.append({"role": "assistant", "content": m.get("content") if k == 0 else None, "tool_calls": [call]})
            result = by_id.get(call.get("id")) or (results[k] if k < len(results) else None)
            if result is not None:
                out.append(result)
        i += 1
    return out


def token_turns(calls: list[dict[str, Any]]) -> list[TokenTurn] | None:
    """The calls' exact prompt and sampled ids as one episode's token log; None unless all have them."""
    if not all(c.get("prompt_ids") is not None and c.get("token_ids") is not None for c in calls):
        return None
    turns: list[TokenTurn] = []
    for c in calls:
        turn = start_turn(turns, c["prompt_ids"])
        turn.generated, turn.logprobs = list(c["token_ids"]), [float(x) for x in c["logprobs"]]
        turns.append(turn)
    return turns


def episode_trajectories(record: dict[str, Any]) -> tuple[list[Trajectory], Counter[str]]:
    """One recorded episode's trajectories (one per run of continuing calls) and what was split."""
    counts: Counter[str] = Counter(episodes=1)
    counts["closed" if record.get("closed") else "unscored"] += 1
    calls, info = record["calls"], record.get("info") or {}
    reward = record.get("reward")
    runs = segments(calls, counts) if calls else []
    out = []
    for k, run in enumerate(runs):
        last = run[-1]
        messages = one_call_per_step([*last["messages"], last["message"]], counts)
        tools = last.get("tools") or None
        question, turns = turns_from_openai(messages, f"episode {record['episode']}", tools)
        final = last["message"]
        prediction = final.get("content") if not final.get("tool_calls") else None
        meta = {"episode": record["episode"], "segment": k, "segments": len(runs), "calls": len(run),
                "model": record.get("model"), "protocol": last.get("protocol", "tool-calls"),
                **({"fmt": last["fmt"]} if last.get("fmt") else {}), **({"unscored": True} if reward is None else {})}  # fmt: skip
        out.append(Trajectory(
            question=question, answer=info.get("answer"), task=str(info.get("task") or "agent"), method="react",
            turns=turns, prediction=prediction, end_reason="finish" if prediction is not None else "max_turns",
            id=str(info.get("id") or record["episode"]), source="gateway", meta=meta, token_turns=token_turns(run),
            tools=tools, instructions=system_text(last["messages"]) or None, reward=reward,
        ))  # fmt: skip
    return out, counts
