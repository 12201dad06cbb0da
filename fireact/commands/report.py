"""Compare eval runs as the paper does: EM with a paired test, cost and time per question, the method
each episode acted as, and the random-method and oracle references from single-method runs.

Reads the rewards the runs were scored with (`fireact score` re-scores against gold first if needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fireact.commands.common import COUNT
from fireact.data.evaluation import cost_row, mcnemar, method_choice, method_references, summarize
from fireact.data.fireact_format import read_any
from fireact.errors import FireactError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, help="eval trajectory files; each is compared with the first")
    p.add_argument(
        "--single",
        nargs="+",
        default=[],
        metavar="METHOD=FILE",
        help="single-method runs on the same questions (e.g. cot=a.jsonl react=b.jsonl reflexion=c.jsonl) "
        "for the random-method and oracle references",
    )
    p.add_argument("--expected", type=COUNT, help="questions expected per file; missing ones count as wrong in EM")
    p.add_argument("--json", action="store_true", help="one JSON object per file, then one for the references")


def scored_run(path: Path) -> list:
    """A run's records; FireactError when nothing in it can be scored (no gold answer, no reward): a
    training set (chat or alpaca file), not an eval run, whose EM would read as 0."""
    records = read_any(path)
    if records and all(r.answer is None and r.reward is None for r in records):
        raise FireactError(f"{path}: none of its {len(records)} records has a gold answer or a reward: a training "
                           "set, not an eval run? (report compares `fireact eval` runs)")  # fmt: skip
    return records


def run(args: argparse.Namespace) -> int:
    single_paths: dict[str, str] = {}
    for item in args.single:
        method, sep, path = item.partition("=")
        if not sep or not method or not path:
            raise FireactError(f"--single {item!r}: expected METHOD=FILE")
        single_paths[method] = path
    singles = {method: scored_run(Path(path)) for method, path in single_paths.items()}
    runs = {str(path): scored_run(path) for path in args.files}
    first = next(iter(runs.values()))
    rows = []
    for name, records in runs.items():
        s = summarize(records, args.expected)
        row = {
            "file": name,
            "n": s.n,
            "questions": s.questions,
            "samples": s.samples,
            "em": s.em,
            "pass_at_g": s.pass_at_g,
            "maj_at_g": s.maj_at_g,
            "format_error_rate": s.format_error_rate,
            "turns_mean": s.turns_mean,
            "turns_std": s.turns_std,
            **cost_row(records),
            "vs_first": mcnemar(first, records) if records is not first else None,
            "acted_as": [m.__dict__ for m in method_choice(records)],
        }
        rows.append(row)
    references = method_references(singles) if singles else None
    if args.json:
        for row in rows:
            print(json.dumps(row))
        if references is not None:
            print(json.dumps({"references": references, "single": single_paths}))
        return 0
    _print(rows, references)
    return 0


def _print(rows: list[dict], references: dict | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # rich would squeeze the columns into 80 characters in a file or a pipe
        console = Console(width=160)
    table = Table(title="runs (paired McNemar vs the first file)")
    cols = ("file", "questions", "episodes", "EM", "pass@G / maj@G", "format err", "turns", "prompt tok/ep",
            "gen tok/ep", "s/episode", "vs first")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col == "file" else "right")
    for r in rows:
        vs = r["vs_first"]
        table.add_row(
            Path(r["file"]).name,
            str(r["questions"]),
            str(r["n"]),
            f"{100 * r['em']:.1f}",
            "-" if r["samples"] == 1 else f"{100 * r['pass_at_g']:.1f} / {100 * r['maj_at_g']:.1f} (G={r['samples']})",
            f"{100 * r['format_error_rate']:.1f}%",
            f"{r['turns_mean']:.1f} ± {r['turns_std']:.1f}",
            f"{r['prompt_tokens']:.0f}",
            f"{r['generated_tokens']:.0f}",
            f"{r['seconds']:.2f}",
            _paired(vs, r["questions"], rows[0]["questions"]),
        )
    console.print(table)
    choice = Table(
        title="method each episode acted as (reflection -> reflexion, one finish turn -> cot, no well-formed action -> no action)"
    )
    for col in ("file", "method", "share", "EM", "turns"):
        choice.add_column(col, justify="left" if col in ("file", "method") else "right")
    for r in rows:
        for m in r["acted_as"]:
            choice.add_row(
                Path(r["file"]).name,
                m["method"],
                f"{100 * m['share']:.1f}% ({m['episodes']})",
                f"{100 * m['em']:.1f}" if m["episodes"] else "-",
                f"{m['turns_mean']:.1f} ± {m['turns_std']:.1f}" if m["episodes"] else "-",
            )
    console.print(choice)
    if references is not None:
        console.print(
            f"references over {references['questions']} questions every single-method run answered: "
            f"random method EM {100 * references['random_method_em']:.1f}, "
            f"per-question oracle EM {100 * references['oracle_em']:.1f}"
        )


def _paired(vs: dict | None, mine: int, first: int) -> str:
    """The McNemar cell; says so when the two runs share fewer questions than they hold."""
    if vs is None:
        return "-"
    cell = f"+{vs['only_second']} / -{vs['only_first']}, p={vs['p_value']:.3f}"
    if vs["questions"] < max(mine, first):
        cell += f" (only {vs['questions']} questions shared)" if vs["questions"] else " (no question shared)"
    return cell
