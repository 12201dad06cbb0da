"""A user's own question set (`--questions FILE.jsonl`): one {question, answer, id?} object a line,
e.g. 2WikiMultiHopQA or MuSiQue questions to run over their own paragraphs with `--tool wiki --corpus`."""

from __future__ import annotations

from pathlib import Path

from fireact.data.paths import read_jsonl
from fireact.data.tasks import Example
from fireact.errors import FireactError

MAX_QUESTION_CHARS = 20_000  # far beyond any benchmark question; a longer one would not fit a model's context


def read_questions(path: Path, task: str) -> list[Example]:
    """The file's questions, scored as `task`'s. Ids are unique (two questions under one id would be
    scored as two samples of one question), and every text is encodable (a lone surrogate escape is
    valid JSON but no tokenizer takes it)."""
    out: list[Example] = []
    first_line: dict[str, tuple[int, str]] = {}
    for lineno, row in read_jsonl(path, "questions file"):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
            raise FireactError(f"{path}:{lineno}: expected an object with a non-empty string `question`")
        if len(row["question"]) > MAX_QUESTION_CHARS:
            raise FireactError(f"{path}:{lineno}: the question is {len(row['question']):,} characters; at most "
                               f"{MAX_QUESTION_CHARS:,} are read")  # fmt: skip
        for key in ("question", "answer"):
            _check_unicode(row.get(key), f"{path}:{lineno}: `{key}`")
        answer = row.get("answer")
        if isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer):
            answer = answer[0]  # datasets with aliases: the first is the gold string EM compares with
        if not isinstance(answer, str):
            raise FireactError(f"{path}:{lineno}: `answer` must be a string, got {type(answer).__name__}")
        qid = str(row.get("id", lineno))
        if qid in first_line and first_line[qid][1] != row["question"]:
            raise FireactError(f"{path}:{lineno}: id {qid!r} is already line {first_line[qid][0]}'s, a different "
                               "question: ids must be unique")  # fmt: skip
        first_line.setdefault(qid, (lineno, row["question"]))
        out.append(Example(qid, row["question"], answer, task))
    if not out:
        raise FireactError(f"{path}: the questions file has no questions")
    return out


def _check_unicode(text: object, where: str) -> None:
    try:
        text.encode("utf-8") if isinstance(text, str) else None
    except UnicodeEncodeError as e:
        raise FireactError(f"{where} has a character that is not valid Unicode ({e.reason} at {e.start})") from None
