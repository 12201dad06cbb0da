"""Readers for the FireAct release: alpaca_format/*.json, gpt_format/*.jsonl, trajs/*.json rollouts.

The released files carry no task or method labels, so both are inferred (see `infer_method`).
Action lines are not all written alike ("Action: finish[x]", "Action 2: Finish[x]", "finish[x]"
inside a thought line...), so parsing is tolerant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fireact.data import tool_calls
from fireact.data.chat import READ_ROLES, message_text
from fireact.data.paths import json_value, not_utf8, read_text, unreadable
from fireact.data.react_grammar import EPISODE_FINISHED, FIELD_LINE, FINISH_CALL, parse_action
from fireact.data.recordings import is_recording, read_recording
from fireact.data.training_formats import is_hf_dataset_dir, read_hf_dataset
from fireact.data.trajectory import Trajectory, Turn, check_text_sizes, question_key, read_trajectories
from fireact.errors import FireactError

_ALPACA_INSTRUCTION = re.compile(r"### Instruction:\n(.*?)\n+### Response:\n?", re.DOTALL)
REFLECTION_MARKER = "reflection"


@dataclass
class ParsedText:
    preamble: str  # text before the first Thought/Action (MMLU alpaca files put the options here)
    turns: list[Turn]
    reward_text: str | None  # the value in "Episode finished, reward = ..."


def parse_react_text(text: str) -> ParsedText:
    """Split `Thought:/Action:/Observation:` text into turns; unlabelled lines continue a field."""
    preamble: list[str] = []
    turns: list[dict[str, list[str]]] = []
    current: list[str] = preamble
    for line in text.splitlines():
        m = FIELD_LINE.match(line)
        if not m:
            current.append(line)
            continue
        kind, rest = m.group(1).lower(), m.group(2)
        if kind == "thought" or not turns or (kind in turns[-1]) or (kind == "action" and "observation" in turns[-1]):
            if kind == "thought" and turns and set(turns[-1]) == {"thought"}:
                current = turns[-1]["thought"]  # "Thought: ... Thought: ..." without an action: one thought
                current.append(rest)
                continue
            turns.append({})
        current = turns[-1].setdefault(kind, [])
        current.append(rest)
    out: list[Turn] = []
    reward = None
    for t in turns:
        obs = "\n".join(t["observation"]).strip() if "observation" in t else None
        if obs is not None and (m := EPISODE_FINISHED.search(obs)) and m.group(1):
            reward, obs = m.group(1).rstrip("."), None
        out.append(Turn("\n".join(t.get("thought", [])).strip(), "\n".join(t.get("action", [])).strip(), obs))
    return ParsedText("\n".join(preamble).strip(), out, reward)


def final_answer(turns: list[Turn]) -> str | None:
    """The argument of the last finish[...] action; tolerant of case and stray text around it."""
    for t in reversed(turns):
        parsed = parse_action(t.action)
        if parsed and parsed[0] == "finish":
            return parsed[1]
        if t.action and (m := FINISH_CALL.search(t.action)):
            return m.group(1).strip()
    return None


def infer_method(parsed: ParsedText, text: str) -> str:
    """reflexion: carries a self-reflection; cot: one finishing turn without search; else react.

    FireAct's CoT generator wrote `reward = 1` while its ReAct one wrote `reward = True/False`; a
    ReAct episode that happened to finish at once keeps its ReAct label through that signature.
    """
    if REFLECTION_MARKER in text.lower():
        return "reflexion"
    searched = any((parse_action(t.action) or ("", ""))[0] == "search" for t in parsed.turns)
    if len(parsed.turns) == 1 and not searched and final_answer(parsed.turns) is not None:
        if parsed.reward_text is None or parsed.reward_text not in ("True", "False"):
            return "cot"
    return "react"


def _question_from_chat(messages: object) -> tuple[str, str]:
    """(question, the rest as ReAct text) from a gpt_format / chat rollout message list."""
    if not isinstance(messages, list):
        raise ValueError(f"messages must be a list, got {type(messages).__name__}")
    chat: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"messages[{i}] must be an object with role and content, got {type(m).__name__}")
        if m.get("role") not in READ_ROLES:
            raise ValueError(f"messages[{i}].role {m.get('role')!r} is not one of {', '.join(READ_ROLES)}")
        if "content" not in m:
            raise ValueError(f"messages[{i}] has no content")
        chat.append((m["role"], message_text(m["content"], f"messages[{i}]")))
    users = [i for i, (role, _) in enumerate(chat) if role == "user"]
    if not users:
        raise ValueError("no user message holding the question")
    q = chat[users[0]][1]
    rest = "\n".join(text for role, text in chat[users[0] + 1 :] if role in ("user", "assistant"))
    return q.strip(), rest


def _question_from_prompt_text(text: str) -> tuple[str, str]:
    m = _ALPACA_INSTRUCTION.search(text)
    if m:
        return m.group(1).strip(), text[m.end() :]
    first = text.split("\n", 1)
    return first[0].strip(), first[1] if len(first) > 1 else ""


def _record(question: str, react_text: str, source: str, **kw) -> Trajectory:
    return _record_of(question, parse_react_text(react_text), react_text, source, **kw)


def _tool_call_record(messages: list, where: str, source: str, tools: object = None, **kw) -> Trajectory:
    """A record from OpenAI tool-call messages (`fireact.data.tool_calls`) calling the `tools` the line
    declares (kept on the record unless they are FireAct's own); a system message is the
    environment's instructions; a last user message "Episode finished, reward = ..." (as `fireact
    export-data` writes it) carries the reward."""
    if tools is not None and tool_calls.declared_names(tools) is None:
        raise ValueError("tools must be a list of {type: function, function: {name, parameters}}")
    declared = tools if tools and tools != tool_calls.TOOLS else None
    if declared is not None and "finish" not in tool_calls.declared_names(declared):
        declared = [*declared, tool_calls.FINISH]
    question, turns = tool_calls.turns_from_openai(messages, where, declared, answered=True)
    system = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "system"]
    if system and isinstance(system[0], str) and system[0].strip():
        kw["instructions"] = system[0]
    kw["tools"] = declared
    reward = None
    if turns and turns[-1].observation and (m := EPISODE_FINISHED.search(turns[-1].observation)) and m.group(1):
        reward, turns[-1].observation = m.group(1).rstrip("."), None
    text = "\n".join(f"{t.thought}\n{t.action}" for t in turns)  # what the method is inferred from
    return _record_of(question, ParsedText("", turns, reward), text, source, **kw)


def _record_of(question: str, parsed: ParsedText, react_text: str, source: str, **kw) -> Trajectory:
    if parsed.preamble:
        question = f"{question}\n{parsed.preamble}"
    check_text_sizes(question, parsed.turns)
    pred = final_answer(parsed.turns)
    last = parsed.turns[-1] if parsed.turns else None
    ended = last is not None and pred is not None and last.observation is None
    return Trajectory(
        question=question.strip(),
        answer=kw.pop("answer", None),
        task=kw.pop("task", ""),
        method=infer_method(parsed, react_text),
        turns=parsed.turns,
        prediction=pred,
        em=1.0 if parsed.reward_text in ("True", "1", "1.0") else 0.0,
        end_reason="finish" if ended else "max_turns",
        source=source,
        meta={"released_reward": parsed.reward_text} if parsed.reward_text else {},
        **kw,
    )


def read_fireact_file(path: str | Path) -> list[Trajectory]:
    """Read any FireAct release file into records with task left empty (see `label_tasks`)."""
    path = Path(path)
    text = read_text(path)
    if not text.strip():
        raise FireactError(f"{path}: empty file, no records")
    source = path.name
    out: list[Trajectory] = []
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            row = json_value(line, path, lineno)
            try:
                if tool_calls.uses_tool_calls(row["messages"]):
                    out.append(_tool_call_record(row["messages"], "tool-call episode", source, row.get("tools"),
                                                  id=f"{source}:{lineno}"))  # fmt: skip
                    continue
                q, rest = _question_from_chat(row["messages"])
                out.append(_record(q, rest, source, id=f"{source}:{lineno}"))
            except KeyError as e:
                raise FireactError(f"{path}:{lineno}: not a FireAct gpt_format record (no {e} key)") from None
            except (ValueError, TypeError) as e:
                raise FireactError(f"{path}:{lineno}: not a FireAct gpt_format record ({e})") from None
        return out
    data = json_value(text, path)
    if isinstance(data, list):  # alpaca_format
        for i, row in enumerate(data):
            if not isinstance(row, dict) or "instruction" not in row or "output" not in row:
                raise FireactError(f"{path}: item {i}: not a FireAct alpaca record (needs instruction, output)")
            if not all(isinstance(row.get(k, ""), str) for k in ("instruction", "input", "output")):
                raise FireactError(f"{path}: item {i}: instruction, input and output must be strings")
            q = row["instruction"] + (f"\n{row['input']}" if row.get("input") else "")
            try:
                out.append(_record(q, row["output"], source, id=f"{source}:{i}"))
            except ValueError as e:
                raise FireactError(f"{path}: item {i}: {e}") from None
        return out
    if isinstance(data, dict):  # trajs/*.json rollouts: index -> {traj, em, f1, pred, gt}
        for key, row in data.items():
            if not isinstance(row, dict) or "traj" not in row:
                raise FireactError(f"{path}: entry {key!r}: not a FireAct rollout (needs traj)")
            traj, gt = row["traj"], row.get("gt")
            try:
                if not isinstance(traj, (list, str)) or not isinstance(gt, (str, type(None))):
                    raise ValueError("traj must be a message list or text, gt a string")
                q, rest = _question_from_chat(traj) if isinstance(traj, list) else _question_from_prompt_text(traj)
                out.append(_record(q, rest, source, id=str(key), answer=gt))
            except ValueError as e:
                raise FireactError(f"{path}: entry {key!r}: not a FireAct rollout ({e})") from None
        return out
    raise FireactError(f"{path}: not a FireAct file (expected a list, a dict of rollouts, or JSONL)")


_MMLU_FORM = re.compile(r"^Question:.*\nA\.", re.DOTALL)


def label_tasks(records: list[Trajectory], task_questions: dict[str, set[str]], file_task: str | None = None) -> None:
    """Set `task` in place: the file's own task (hotpotqa*.json), membership in a task's question
    set, then the question's form.

    MMLU questions carry `Question:` and lettered options. FireAct's HotpotQA and StrategyQA
    training questions come from train splits the release does not ship, so an unknown question
    answered yes/no is StrategyQA and any other is HotpotQA.
    """
    index = {question_key(q): task for task, qs in task_questions.items() for q in qs}
    for r in records:
        if r.task:
            continue
        task = file_task or index.get(question_key(r.question))
        if task is None:
            if _MMLU_FORM.match(r.question) or r.question.startswith("Question:"):
                task = "mmlu"
            elif r.prediction is not None and question_key(r.prediction).strip(".!") in ("yes", "no"):
                task = "strategyqa"
            else:
                task = "hotpotqa"
        r.task = task


def read_any(path: str | Path) -> list[Trajectory]:
    """This project's JSONL, a `datasets` folder fireact exported, a recording gateway's directory
    (`fireact serve --record`), or any FireAct release file (told apart by the first record's keys)."""

    path = Path(path)
    if is_hf_dataset_dir(path):
        return read_hf_dataset(path)
    if is_recording(path):
        return read_recording(path).trajectories
    if path.suffix == ".jsonl" and path.is_file():
        try:
            with path.open(encoding="utf-8") as f:
                first = next((line for line in f if line.strip()), "")
        except UnicodeDecodeError:
            raise not_utf8(path) from None
        except OSError as e:
            raise unreadable(path, e) from None
        if not first:
            raise FireactError(f"{path}: empty file, no records")
        if '"messages"' not in first[:200]:
            return read_trajectories(path)
    return read_fireact_file(path)


def file_task(path: str | Path, tasks: list[str]) -> str | None:
    """The task a FireAct file is named after (hotpotqa.json, hotpotqa_multimethod.json), if any."""
    stem = Path(path).stem
    return next((t for t in tasks if stem == t or stem.startswith(f"{t}_")), None)
