"""Few-shot prompting: instructions and exemplar episodes put before the question (teacher runs and
prompting baselines). The zero-shot format fine-tuned models are trained on, and the rendering of
every prompt, live in `fireact.data.prompt_style`; in chat format the exemplars are earlier turns of
the same conversation, in alpaca format a block of example text in the instruction.
"""

from __future__ import annotations

import random
from pathlib import Path

from fireact.data.fireact_format import label_tasks, read_fireact_file
from fireact.data.protocols import PROTOCOLS, Message
from fireact.data.react_grammar import agent_text, observation_text
from fireact.data.trajectory import Trajectory, Turn
from fireact.errors import FireactError

INSTRUCTIONS = {
    "react": (
        "Solve a question answering task with interleaving Thought, Action, Observation steps. Thought can "
        "reason about the current situation, and Action can be two types:\n"
        "(1) search[question], which searches a question on Google and returns a short snippet containing "
        "the answer. Note that sometimes the snippet does not contain the answer, and some alternative "
        "search might be needed.\n"
        "(2) finish[answer], which returns the answer and finishes the task.\n"
    ),
    "cot": (
        "Solve a question answering task by reasoning step by step in one Thought, then give the answer as "
        "Action: finish[answer].\n"
    ),
    "io": "Answer the question directly with a short answer, written as finish[answer].\n",
}
INSTRUCTIONS["reflexion"] = INSTRUCTIONS["react"] + (
    "When asked to reflect, start the Thought with `Reflection:`, say what went wrong so far and how to "
    "change the strategy.\n"
)
REFLECT_REQUEST = (
    "The answer has not been found yet. Reflect on the trajectory so far in your next Thought "
    "(start it with `Reflection:`) and change strategy if needed."
)


def episode_text(question: str, turns: list[Turn]) -> str:
    """An exemplar episode as ReAct text: Question, then Thought/Action/Observation lines."""
    lines = [f"Question: {question}"]
    for t in turns:
        lines.append(agent_text(t))
        if t.observation is not None:
            lines.append(observation_text(t.observation))
    return "\n".join(lines)


def few_shot_prefix(
    method: str,
    exemplars: list[Trajectory] | None = None,
    text: str | None = None,
    fmt: str = "alpaca",
    instruction: str | None = None,
) -> str | list[Message]:
    """What goes before the question: nothing (zero-shot), the user's prompt text, or the instruction
    plus exemplars. In chat format the exemplars are earlier turns of the same conversation, each in
    the zero-shot gpt_format (small models copy that far better than a block of example text).
    `instruction`: FireAct's for the method by default; an environment's own tools are described in
    its system text instead ("")."""
    if text is not None:
        return text.rstrip() + "\n\n"
    if not exemplars:
        return ""
    instruction = INSTRUCTIONS[method] if instruction is None else instruction
    if fmt == "chat":
        messages: list[Message] = [m for e in exemplars for m in PROTOCOLS["react"].conversation(e.question, e.turns)]
        messages[0] = {**messages[0], "content": f"{instruction}\n{messages[0]['content']}".lstrip("\n")}
        return messages
    shots = "\n\n".join(episode_text(e.question, e.turns) for e in exemplars)
    return f"{instruction}Here are some examples:\n{shots}\n(END OF EXAMPLES)\n\n"


def pick_exemplars(
    pool: list[Trajectory],
    task: str,
    k: int,
    seed: int = 0,
    exclude_questions: set[str] | None = None,
    method: str | None = None,
) -> list[Trajectory]:
    """K successful trajectories of the task (of `method` when the pool has enough), drawn with a seed."""
    if k <= 0:
        return []
    exclude = exclude_questions or set()
    ok = [t for t in pool if t.task == task and t.em >= 1.0 and t.finished and t.question not in exclude]
    same = [t for t in ok if t.method == method]
    if method is not None and len(same) >= k:
        ok = same
    if len(ok) < k:
        raise FireactError(f"few-shot needs {k} successful {task} trajectories, the exemplar pool has {len(ok)}")
    ok.sort(key=lambda t: (t.question, t.id))
    return random.Random(seed).sample(ok, k)


def default_exemplar_pool(data_dir: Path, task: str) -> list[Trajectory]:
    """Successful GPT-4 trajectories from the FireAct release for the task (finetune/gpt_format)."""

    folder = Path(data_dir) / "finetune" / "gpt_format"
    own = [folder / f"{task}_multimethod.jsonl", folder / f"{task}.jsonl"]
    path = next((p for p in [*own, folder / "multitask_multimethod.jsonl"] if p.is_file()), None)
    if path is None:
        raise FireactError(f"no exemplar source for {task} in {folder}: pass --few-shot-from FILE")
    records = read_fireact_file(path)
    label_tasks(records, {}, task if path in own else None)
    return records
