"""A user's questions file that would score wrong or crash the tokenizer: refused naming file:line."""

from __future__ import annotations

import pytest

from fireact.data.questions_file import read_questions
from fireact.errors import FireactError


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (['{"id": "a", "question": "Q1?", "answer": "x"}', '{"id": "a", "question": "Q2?", "answer": "y"}'],
         ":2: id 'a' is already line 1's"),
        ([r'{"question": "Who \ud800?", "answer": "x"}'], ":1: `question` has a character"),
        (['{"question": "' + "word " * 5000 + '", "answer": "x"}'], ":1: the question is 25,000 characters"),
    ],
)  # fmt: skip
def test_a_bad_questions_file_is_named(tmp_path, lines, words):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FireactError, match=words.replace("(", r"\(")):
        read_questions(path, "hotpotqa")


def test_one_question_twice_under_its_id_is_fine(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "Q1?", "answer": "x"}\n{"id": "a", "question": "Q1?", "answer": "x"}\n')
    assert [e.id for e in read_questions(path, "hotpotqa")] == ["a", "a"]
