"""The wiki world measured (issue 25): retrieval first, then the SFT agents in it.

Steps, in order, each a public CLI command in a subprocess; the command, wall time, CPU time and
library versions of each go to runs/wiki/steps.json, and a finished step (its output file exists)
is skipped on a rerun, so an interrupted run resumes:
  bench-*      bench/retrieval.py: bm25, then dense and hybrid (a 35k-passage MiniLM build)
  q-*          the quickstart adapter (runs/quickstart/adapter)
  c-*          the reproduction's (c) adapter (runs/repro/react/adapter, `experiments/reproduce.py --only c`)
  *-wiki-eval  --tool wiki on all 500 wiki-eval questions; *-snap-eval the snapshot tool on the same
  *-wiki-dev   --tool wiki on the paper's dev 100;          *-snap-dev  the snapshot tool on them

    python experiments/wiki_world.py [--only q-wiki-eval ...] [--threads 2] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from steps import run_step

OUT = Path("runs/wiki")
ADAPTERS = {"q": "runs/quickstart/adapter", "c": "runs/repro/react/adapter"}
EVALS = {  # suffix -> eval arguments
    "wiki-eval": ["--split", "wiki-eval", "--n", "500", "--tool", "wiki"],
    "snap-eval": ["--split", "wiki-eval", "--n", "500", "--tool", "snapshot"],
    "wiki-dev": ["--split", "dev", "--n", "100", "--tool", "wiki"],
    "snap-dev": ["--split", "dev", "--n", "100", "--tool", "snapshot"],
}


def steps(args: argparse.Namespace) -> dict[str, tuple[list[str], Path]]:
    """name -> (command, the file that exists once it is done)."""
    out = {}
    for name, retrievers in (("bench-bm25", ["bm25"]), ("bench-dense", ["dense", "hybrid"])):
        path = OUT / f"retrieval_{name[6:]}.json"
        cmd = [sys.executable, "bench/retrieval.py", "--threads", str(args.threads), "--retrievers", *retrievers]
        out[name] = ([*cmd, "--out", str(path)], path)
    for agent, adapter in ADAPTERS.items():
        for suffix, extra in EVALS.items():
            path = OUT / f"eval_{agent}-{suffix}.jsonl"
            cmd = [sys.executable, "-m", "fireact", "eval", "--adapter", adapter, *extra, "--out", str(path), "--json",
                   "--threads", str(args.threads), "--batch-size", str(args.batch_size)]  # fmt: skip
            out[f"{agent}-{suffix}"] = (cmd, path)
    return out


def report() -> str:
    """The markdown table of docs/results/reproduction.md's wiki-world section, from the eval files."""
    from fireact.data.evaluation import episode_stats, mcnemar
    from fireact.data.fireact_format import read_any

    runs = {name: read_any(path) for name, (_, path) in steps(argparse.Namespace(threads=2, batch_size=32)).items()
            if name[0] in ADAPTERS and path.is_file()}  # fmt: skip
    lines = ["| agent | tool | questions | EM | F1 | format errors | searches / episode | gold in an observation "
             "(right then) | vs the other tool: +/-, McNemar p | vs the other adapter: +/-, p |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, trajs in runs.items():
        agent, tool, split = name.split("-")
        st = episode_stats(trajs)
        other_tool = runs.get(f"{agent}-{'snap' if tool == 'wiki' else 'wiki'}-{split}")
        other_agent = runs.get(f"{'c' if agent == 'q' else 'q'}-{tool}-{split}")
        cells = []
        for other in (other_tool, other_agent):
            if other is None:
                cells.append("-")
            else:
                m = mcnemar(other, trajs)
                cells.append(f"+{m['only_second']} / -{m['only_first']}, p={m['p_value']:.3f}")
        lines.append(f"| {'quickstart' if agent == 'q' else '(c)'} | {'wiki' if tool == 'wiki' else 'snapshot'} | "
                     f"{'wiki-eval' if split == 'eval' else 'dev 100'} ({st['n']}) | {100 * st['em']:.1f} | "
                     f"{100 * st['f1']:.1f} | {100 * st['format_errors']:.1f}% | {st['searches']:.2f} | "
                     f"{st['gold_seen']} ({st['right_when_seen']}) | {cells[0]} | {cells[1]} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", help="run only these steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--report", action="store_true", help="print the results table from the finished evals")
    args = p.parse_args()
    if args.report:
        print(report())
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (cmd, done) in steps(args).items():
        if args.only and name not in args.only:
            continue
        adapter = next((a for k, a in ADAPTERS.items() if name.startswith(f"{k}-")), None)
        if adapter and not (Path(adapter) / "adapter_config.json").is_file():
            print(f"[{name}] skipped: no adapter at {adapter} yet", flush=True)
            continue
        run_step(OUT / "steps.json", name, cmd, done)


if __name__ == "__main__":
    main()
