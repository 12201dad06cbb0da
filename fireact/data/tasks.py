"""The four FireAct tasks: questions, gold answers and scorers, read from the FireAct data dir."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from fireact.data.fireact_format import read_fireact_file
from fireact.data.paths import json_value, not_utf8, read_text
from fireact.data.scoring import exact_match, f1_score, letter_match, yes_no_match
from fireact.data.trajectory import question_key
from fireact.data.wiki_questions import SPLITS as WIKI_SPLITS
from fireact.data.wiki_questions import example_id, read_wiki_questions, wiki_dir, wiki_split
from fireact.errors import FireactError


@dataclass
class Example:
    """One question of a task (not frozen: Lightning rebuilds the dataclasses of a batch it moves)."""

    id: str
    question: str
    answer: str | None  # None where the release has no gold answer (e.g. HotpotQA test)
    task: str = ""  # the task that scores it: set by `Task.load` and `read_questions`


@dataclass(frozen=True)
class Score:
    em: float
    f1: float


@dataclass(frozen=True)
class Task:
    name: str
    splits: tuple[str, ...]
    loader: Callable[[Path, str], list[Example]]
    em: Callable[[str | None, str], float]
    uses_f1: bool  # free-form answers get token F1; closed answers score F1 = EM
    ordered: tuple[str, ...] = ()  # splits already in selection order: `select` never reshuffles them

    def load(self, data_dir: Path, split: str) -> list[Example]:
        if split not in self.splits:
            raise FireactError(f"task {self.name} has no split {split!r}; choose from {', '.join(self.splits)}")
        return _cached_load(self, Path(data_dir), split)

    def selection_seed(self, split: str, seed: int | None) -> int | None:
        """The shuffle seed `select` uses on this split: None where the split is already in order."""
        return None if split in self.ordered else seed

    def score(self, pred: str | None, gold: str) -> Score:
        em = self.em(pred, gold)
        return Score(em=em, f1=f1_score(pred, gold) if self.uses_f1 else em)


@cache
def _cached_load(task: Task, data_dir: Path, split: str) -> list[Example]:
    return [replace(e, task=task.name) for e in task.loader(data_dir, split)]


def _read_json(path: Path, answer: tuple[type, ...] = (str, type(None))) -> list[dict]:
    """A task file: a JSON list of objects, each with a string question and an `answer`-typed answer."""
    if not path.exists():
        raise FireactError(f"missing data file {path}: run `fireact data download`")
    rows = json_value(read_text(path), path)
    if not isinstance(rows, list):
        raise FireactError(f"{path}: expected a JSON list of questions, got {type(rows).__name__}")
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not isinstance(r.get("question"), str):
            raise FireactError(f"{path}: item {i}: expected an object with a string question")
        if not isinstance(r.get("answer"), answer):
            kinds = " or ".join("null" if t is type(None) else t.__name__ for t in answer)
            raise FireactError(f"{path}: item {i}: answer must be {kinds}")
    return rows


def _read_csv(path: Path) -> list[list[str]]:
    """A task's CSV rows (header included)."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.reader(f))
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except (OSError, csv.Error) as e:
        raise FireactError(f"{path}: cannot read as CSV ({e})") from None


def _load_hotpotqa(data_dir: Path, split: str) -> list[Example]:
    if split in WIKI_SPLITS:
        return _load_wiki(data_dir, split)
    if split == "train":
        return _fireact_training_questions(data_dir / "finetune" / "gpt_format" / "hotpotqa.jsonl")
    rows = _read_json(data_dir / "hotpotqa" / f"{split}.json")
    return [Example(str(i), r["question"], r.get("answer")) for i, r in enumerate(rows)]


def _fireact_training_questions(path: Path) -> list[Example]:
    """The questions of FireAct's fine-tuning trajectories, with their (exact-match) answers.

    The release ships no HotpotQA train split, but its 500 GPT-4 trajectories are the successful ones
    on train questions, so each final answer is the gold answer, and the search snapshot holds their
    queries: the training pool for on-policy learning (never a dev question, see fireact.modules.questions).
    """

    if not path.is_file():
        raise FireactError(f"missing data file {path}: run `fireact data download`")
    seen, out = set(), []
    for t in read_fireact_file(path):
        key = question_key(t.question)
        if t.prediction and key not in seen:
            seen.add(key)
            out.append(Example(f"train-{len(out)}", t.question, t.prediction))
    return out


def wiki_rows(data_dir: Path, split: str) -> list[dict]:
    """The wiki world's question rows of one split (with their supporting titles), in order."""
    rows = read_wiki_questions(wiki_dir(data_dir) / "questions.jsonl")
    dev = _read_json(data_dir / "hotpotqa" / "dev.json")
    trained = {question_key(e.question) for e in _load_hotpotqa(data_dir, "train")}
    return wiki_split(rows, split, len(dev), trained)


def _load_wiki(data_dir: Path, split: str) -> list[Example]:
    return [Example(example_id(r), r["question"], r["answer"]) for r in wiki_rows(data_dir, split)]


def _load_bamboogle(data_dir: Path, split: str) -> list[Example]:
    path = data_dir / "bamboogle" / f"{split}.csv"
    if not path.is_file():
        raise FireactError(f"missing data file {path}: run `fireact data download`")
    header, *rows = _read_csv(path) or [[]]
    if header[:2] != ["Question", "Answer"]:
        raise FireactError(f"{path}:1: expected the columns Question, Answer, got {', '.join(header) or 'none'}")
    for i, row in enumerate(rows):
        if len(row) < 2:
            raise FireactError(f"{path}:{i + 2}: expected a Question and an Answer, got {len(row)} column(s)")
    return [Example(str(i), row[0], row[1]) for i, row in enumerate(rows)]


_STRATEGYQA_FILES = {"dev": "strategyqa_dev", "test": "strategyqa_test", "train": "strategyqa_train_filtered"}


def _load_strategyqa(data_dir: Path, split: str) -> list[Example]:
    rows = _read_json(data_dir / "strategyqa" / f"{_STRATEGYQA_FILES[split]}.json", answer=(bool, type(None)))
    out = []
    for i, r in enumerate(rows):
        gold = r.get("answer")
        out.append(Example(str(r.get("qid", i)), r["question"], None if gold is None else ("yes" if gold else "no")))
    return out


def mmlu_question(question: str, choices: list[str]) -> str:
    """FireAct's MMLU prompt: the question, then one `X. choice` line per option."""
    lines = [f"Question: {question}"] + [f"{letter}. {c}" for letter, c in zip("ABCD", choices)]
    return "\n".join(lines)


def _load_mmlu(data_dir: Path, split: str) -> list[Example]:
    folder = data_dir / "mmlu" / split
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise FireactError(f"no MMLU csv files in {folder}: run `fireact data download`")
    out = []
    for path in files:
        for i, row in enumerate(_read_csv(path)):
            if len(row) != 6:
                raise FireactError(f"{path}:{i + 1}: expected 6 columns (question, A-D, answer), got {len(row)}")
            out.append(Example(f"{path.stem}/{i}", mmlu_question(row[0], row[1:5]), row[5].strip()))
    return out


def _load_synthetic(data_dir: Path, split: str) -> list[Example]:
    rows = _read_json(data_dir / "synthetic" / f"{split}.json", answer=(str,))
    return [Example(str(i), r["question"], r["answer"]) for i, r in enumerate(rows)]


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("hotpotqa", ("dev", "test", "train", *WIKI_SPLITS), _load_hotpotqa, exact_match, True, WIKI_SPLITS),
        Task("bamboogle", ("test",), _load_bamboogle, exact_match, True),
        Task("strategyqa", ("dev", "test", "train"), _load_strategyqa, yes_no_match, False),
        Task("mmlu", ("dev", "val", "test", "train"), _load_mmlu, letter_match, False),
        # fireact.data.synthetic's invented world (`fireact data synthetic`), for offline proofs
        Task("synthetic", ("train", "dev"), _load_synthetic, exact_match, True),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise FireactError(f"unknown task {name!r}; choose from {', '.join(TASKS)}") from None


def select(examples: list[Example], n: int | None = None, seed: int | None = 233, offset: int = 0) -> list[Example]:
    """The paper's evaluation subset: indices shuffled with random.Random(seed), then [offset:offset+n].

    seed=None keeps file order.
    """
    idx = list(range(len(examples)))
    if seed is not None:
        random.Random(seed).shuffle(idx)
    idx = idx[offset:] if n is None else idx[offset : offset + n]
    return [examples[i] for i in idx]
