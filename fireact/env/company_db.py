"""An environment whose tools no one here wrote: questions about a company's SQLite database, answered
through the `mcp-server-sqlite` MCP server (`list_tables` of no argument, `describe_table`,
`read_query`) and one Python tool of two arguments (`divide`).

The database and its questions come from a seeded generator (offline, the same on every machine), so
the gold answers are known; `teacher_episode` is a scripted teacher that plays the tools for real
(the observations are the server's own) and ends with the gold answer, FireAct's GPT-4 role here.
The reward compares numbers as numbers (`84,000` and `$84000` are 84000), an environment's own reward.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from fireact.data.paths import default_cache_dir
from fireact.data.tool_calls import parameters_by_name, react_action
from fireact.data.trajectory import Trajectory, Turn, write_trajectories
from fireact.env.environment import Environment
from fireact.errors import FireactError
from fireact.tools.mcp import MCPServer

SPLITS = ("train", "test")
INSTRUCTIONS = (
    "You answer questions about a company's SQLite database. Look at its tables, query them with SQL "
    "and give the answer, a number, with finish."
)
_FIRST = ("Ada Alan Bea Cal Dana Eli Fay Gus Hana Ivo Jon Kai Lea Max Nia Oto Pia Rex Sia Tom Uma Vic Wen Yan Zoe"
          ).split()  # fmt: skip
_LAST = "Abe Berg Cole Diaz Ekk Ford Gray Hale Ives Janz Kerr Lund Moss Nash Ortiz Park Quin Ross Shaw Toft".split()
_DEPARTMENTS = ("Sales", "Research", "Support", "Legal", "Finance", "Design", "Logistics", "Marketing", "Security",
                "Training")  # fmt: skip
_CITIES = ("Oslo", "Lima", "Pune", "Graz", "Cork")


def divide(numerator: float, denominator: float) -> int:
    """Divide one number by another and round to the nearest whole number.

    Args:
        numerator: the number to divide
        denominator: the number to divide by
    """
    return round(numerator / denominator)


def build_database(path: Path, seed: int = 0, employees: int = 150) -> None:
    """The company: `departments(name, budget, floor)` and `employees(id, name, department, city, salary)`."""
    rng = random.Random(seed)
    names = rng.sample([f"{f} {last}" for f in _FIRST for last in _LAST], employees)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.execute("CREATE TABLE departments (name TEXT PRIMARY KEY, budget INTEGER, floor INTEGER)")
        db.execute(
            "CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, department TEXT, city TEXT, salary INTEGER)"
        )
        for i, d in enumerate(_DEPARTMENTS):
            db.execute("INSERT INTO departments VALUES (?, ?, ?)", (d, rng.randrange(200, 2000) * 1000, i % 4 + 1))
        for i, name in enumerate(names):
            row = (i + 1, name, rng.choice(_DEPARTMENTS), rng.choice(_CITIES), rng.randrange(40, 160) * 1000)
            db.execute("INSERT INTO employees VALUES (?, ?, ?, ?, ?)", row)
    tmp.replace(path)


def _questions(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every question the generator asks, with its gold answer and the queries that answer it."""
    out: list[dict[str, Any]] = []
    for name, salary in db.execute("SELECT name, salary FROM employees ORDER BY id"):
        out.append({"question": f"What is the annual salary of {name}?", "answer": str(salary), "kind": "salary",
                    "queries": [f"SELECT salary FROM employees WHERE name = '{name}'"]})  # fmt: skip
    for d in _DEPARTMENTS:
        for c in _CITIES:
            where = f"department = '{d}' AND city = '{c}'"
            n, total = db.execute(f"SELECT COUNT(*), SUM(salary) FROM employees WHERE {where}").fetchone()
            out.append({"question": f"How many employees of the {d} department work in {c}?", "answer": str(n),
                        "kind": "count", "queries": [f"SELECT COUNT(*) FROM employees WHERE {where}"]})  # fmt: skip
            if n:
                out.append({"question": f"What is the average salary in the {d} department in {c}, rounded to a "
                            "whole number?", "answer": str(divide(total, n)), "kind": "average", "queries": [
                                f"SELECT SUM(salary) FROM employees WHERE {where}",
                                f"SELECT COUNT(*) FROM employees WHERE {where}"]})  # fmt: skip
        (budget,) = db.execute("SELECT budget FROM departments WHERE name = ?", (d,)).fetchone()
        (n,) = db.execute("SELECT COUNT(*) FROM employees WHERE department = ?", (d,)).fetchone()
        out.append({"question": f"What is the {d} department's budget per employee, rounded to a whole number?",
                    "answer": str(divide(budget, n)), "kind": "per_employee", "numbers": [budget, n],
                    "queries": [f"SELECT budget FROM departments WHERE name = '{d}'",
                                f"SELECT COUNT(*) FROM employees WHERE department = '{d}'"]})  # fmt: skip
    return out


def examples(db_path: Path, split: str, seed: int = 0) -> list[dict[str, Any]]:
    """A split's questions: all of them shuffled with the seed, 70% train and 30% test."""
    if split not in SPLITS:
        raise FireactError(f"environment company-db: split {split!r} is not one of {', '.join(SPLITS)}")
    with sqlite3.connect(db_path) as db:
        rows = _questions(db)
    random.Random(seed).shuffle(rows)
    cut = int(len(rows) * 0.7)
    chosen = rows[:cut] if split == "train" else rows[cut:]
    return [{"id": f"{split}-{i}", **r} for i, r in enumerate(chosen)]


def _number(text: str | None) -> float | None:
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", text or "")
    return float(m.group(0).replace(",", "")) if m else None


def numeric_reward(trajectory: Trajectory, example: dict[str, Any]) -> float:
    """1 when the final answer is the gold number (however written), else 0."""
    got, gold = _number(trajectory.prediction), _number(example.get("answer"))
    return float(got is not None and gold is not None and abs(got - gold) < 1e-6)


def server_command(db_path: Path) -> list[str]:
    """The PyPI server, run by this Python (its console script may not be on PATH)."""
    return [sys.executable, "-c", "from mcp_server_sqlite import main; main()", "--db-path", str(db_path)]


def load_environment(split: str = "train", seed: int = 0, db_dir: str | None = None) -> Environment:
    """The company-db world of one split (the database is built once per seed, in the cache dir)."""
    db_path = Path(db_dir or default_cache_dir() / "company_db") / f"company-{seed}.sqlite"
    if not db_path.is_file():
        build_database(db_path, seed)
    server = MCPServer(command=server_command(db_path), tools=["list_tables", "describe_table", "read_query"])
    return Environment("company-db", examples(db_path, split, seed), [server, divide], reward=numeric_reward,
                       instructions=INSTRUCTIONS, max_turns=8)  # fmt: skip


def teacher_episode(env: Environment, example: dict[str, Any]) -> Trajectory:
    """The scripted teacher: look at the tables, query, compute, finish; every call through the tools."""
    tools = env.toolset()
    params = parameters_by_name(env.schemas())
    turns: list[Turn] = []

    def call(thought: str, name: str, arguments: dict[str, Any]) -> str:
        observation = tools[name](arguments)
        turns.append(Turn(thought, react_action(name, arguments, params[name]), observation, name, arguments))
        return observation

    call("I should see which tables the database has.", "list_tables", {})
    table = "departments" if example["kind"] == "per_employee" else "employees"
    call(f"The {table} table should have what I need. Let me see its columns.", "describe_table", {"table_name": table})
    values = []
    for i, query in enumerate(example["queries"]):
        thought = "Now I can query it." if i == 0 else "Now I need the number of those employees."
        observation = call(thought, "read_query", {"query": query})
        values.append(_number(observation.split(":", 1)[-1]))
    answer = example["answer"]
    if example["kind"] in ("per_employee", "average"):
        total, count = (int(v or 0) for v in values)
        what = "budget" if example["kind"] == "per_employee" else "salary sum"
        call(f"The {what} is {total} and there are {count} employees. I divide them.", "divide",
             {"numerator": total, "denominator": count})  # fmt: skip
    turns.append(Turn(f"So the answer is {answer}.", f"finish[{answer}]", None))
    t = Trajectory(question=example["question"], answer=answer, task=env.name, method="react", turns=turns,
                   prediction=answer, em=1.0, f1=1.0, id=example["id"], source="scripted-teacher",
                   tools=env.schemas(), instructions=env.instructions)  # fmt: skip
    t.reward = env.reward_of(t)
    return t


def main(argv: list[str] | None = None) -> int:
    """`python -m fireact.env.company_db --split train --out teacher.jsonl`: the teacher's trajectories."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--split", default="train", choices=SPLITS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    started = time.monotonic()
    env = load_environment(args.split, args.seed)
    try:
        trajs = [teacher_episode(env, row) for row in env.rows().values()]
    finally:
        env.close()
    write_trajectories(args.out, trajs)
    calls = sum(len(t.turns) for t in trajs) / len(trajs)
    seconds = round(time.monotonic() - started, 1)
    print(json.dumps({"episodes": len(trajs), "reward": sum(t.score for t in trajs) / len(trajs),
                      "calls_per_episode": calls, "seconds": seconds, "out": str(args.out)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
