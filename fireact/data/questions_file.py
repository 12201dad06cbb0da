"""A user's own question set (`--questions FILE.jsonl`): one {question, answer, id?} object a line,
e.g. 2WikiMultiHopQA or MuSiQue questions to run over their own paragraphs with `--tool wiki --corpus`."""

from __future__ import annotations

from pathlib import Path

from fireact.data.paths import read_jsonl
from fireact.data.tasks import Example
from fireact.errors import FireactError


def read_questions(path: Path, task: str) -> list[Example]:
    """The file's questions, scored as `task`'s."""
    out: list[Example] = []
    for lineno, row in read_jsonl(path, "questions file"):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
            raise FireactError(f"{path}:{lineno}: expected an object with a non-empty string `question`")
        answer = row.get("answer")
        if isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer):
            answer = answer[0]  # datasets with aliases: the first is the gold string EM compares with
        if not isinstance(answer, str):
            raise FireactError(f"{path}:{lineno}: `answer` must be a string, got {type(answer).__name__}")
        out.append(Example(str(row.get("id", lineno)), row["question"], answer, task))
    if not out:
        raise FireactError(f"{path}: the questions file has no questions")
    return out
