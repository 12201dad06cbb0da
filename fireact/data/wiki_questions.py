"""HotpotQA questions of the offline Wikipedia world (`../shared/data/hotpotqa_wiki`): the questions
whose gold paragraphs are all in its corpus, split so that evaluation follows the paper's order and
on-policy training never sees an evaluated or a FireAct fine-tuning question.

- wiki-eval: the first 500 covered dev questions in the paper's order (FireAct dev shuffled with
  Random(233), kept where covered): the 156 covered questions of the paper's 500 come first.
- wiki-val: 200 of the other covered questions (seeded), held out to choose settings on.
- wiki-train: the rest, minus the questions of FireAct's fine-tuning trajectories.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from fireact.data.paths import read_jsonl
from fireact.data.trajectory import question_key
from fireact.errors import FireactError

ENV_VAR = "FIREACT_WIKI_DIR"
SPLITS = ("wiki-eval", "wiki-val", "wiki-train")
EVAL_SIZE, VAL_SIZE, SEED = 500, 200, 233


def wiki_dir(data_dir: Path) -> Path:
    """$FIREACT_WIKI_DIR, else hotpotqa_wiki beside the FireAct data dir (the shared layout), else inside it."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    for candidate in (data_dir.parent / "hotpotqa_wiki", data_dir / "hotpotqa_wiki"):
        if (candidate / "questions.jsonl").is_file():
            return candidate
    raise FireactError(
        f"no hotpotqa_wiki/questions.jsonl beside or in {data_dir}: set ${ENV_VAR} to the folder holding "
        "paragraphs.jsonl and questions.jsonl"
    )


def default_corpus(data_dir: Path) -> Path:
    return wiki_dir(data_dir) / "paragraphs.jsonl"


def read_wiki_questions(path: Path) -> list[dict]:
    rows = []
    for lineno, row in read_jsonl(path, "wiki questions file"):
        if not (isinstance(row, dict) and isinstance(row.get("question"), str) and isinstance(row.get("answer"), str)):
            raise FireactError(f"{path}:{lineno}: expected an object with string question and answer")
        rows.append(row)
    return rows


def wiki_split(rows: list[dict], split: str, dev_size: int, fireact_questions: set[str]) -> list[dict]:
    """The rows of one split, in its selection order (callers never reshuffle it)."""
    if split not in SPLITS:
        raise FireactError(f"unknown wiki split {split!r}; choose from {', '.join(SPLITS)}")
    by_dev = {
        r["fireact_dev_index"]: r for r in rows if r.get("split") == "dev" and r.get("fireact_dev_index") is not None
    }
    order = list(range(dev_size))
    random.Random(SEED).shuffle(order)  # the paper's selection (fireact.data.tasks.select)
    evaluated = [by_dev[i] for i in order if i in by_dev][:EVAL_SIZE]
    if split == "wiki-eval":
        return evaluated
    taken = {id(r) for r in evaluated}
    rest = [r for r in rows if id(r) not in taken and question_key(r["question"]) not in fireact_questions]
    random.Random(SEED).shuffle(rest)
    return rest[:VAL_SIZE] if split == "wiki-val" else rest[VAL_SIZE:]


def example_id(row: dict) -> str:
    """A dev question keeps its FireAct dev index as id (runs on `dev` and `wiki-eval` pair up)."""
    if row.get("split") == "dev" and row.get("fireact_dev_index") is not None:
        return str(row["fireact_dev_index"])
    return f"hotpot-{row.get('id') or question_key(row['question'])}"
