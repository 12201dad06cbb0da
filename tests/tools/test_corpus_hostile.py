"""Corpus files that would index or answer wrong: refused naming what and where; a passage of stopwords
only is never the answer to a query the corpus has no word of."""

from __future__ import annotations

import json

import pytest

from fireact.errors import FireactError
from fireact.tools.bm25 import BM25Retriever
from fireact.tools.corpus import scan


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ([{"title": "Nile", "sentences": [None, 1966, {"text": "x"}]}], "c.jsonl:1: `sentences` must be strings"),
        ([{"id": "7", "title": "A", "text": "a"}, {"id": "8", "title": "B", "text": "b"},
          {"id": "7", "title": "C", "text": "c"}], "passages 1 and 3 share an id"),
    ],
)  # fmt: skip
def test_a_bad_corpus_is_named(tmp_path, rows, words):
    with pytest.raises(FireactError, match=words):
        list(scan(write(tmp_path / "c.jsonl", rows)))


def test_a_directory_is_said_to_be_one(tmp_path):
    with pytest.raises(FireactError, match="is a directory"):
        list(scan(tmp_path))


def test_a_stopword_passage_is_no_answer_to_unknown_words(tmp_path, monkeypatch):
    monkeypatch.setenv("FIREACT_INDEX_DIR", str(tmp_path / "idx"))
    corpus = write(tmp_path / "c.jsonl", [{"title": "The", "sentences": ["and of the."]},
                                          {"title": "Nile", "sentences": ["The Nile is a river."]}])  # fmt: skip
    hits = BM25Retriever(corpus).search(["quantum chromodynamics", "Nile river"], 2)
    assert hits[0] == [] and [row for row, _ in hits[1]] == [1]
