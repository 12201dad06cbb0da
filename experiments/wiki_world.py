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
import json
import resource
import shlex
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

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


def run_step(name: str, cmd: list[str], done: Path) -> None:
    record_path = OUT / "steps.json"
    records = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if name in records and done.exists():
        return
    print(f"[{name}] {shlex.join(cmd)}", flush=True)
    start, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not done.exists():
        sys.exit(f"[{name}] failed with exit code {proc.returncode}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    records = json.loads(record_path.read_text()) if record_path.is_file() else {}
    records[name] = {
        "cmd": shlex.join(["python", *cmd[1:]]),
        "seconds": round(time.monotonic() - start, 1),
        "cpu_seconds": round(used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime, 1),
        "result": json.loads(lines[-1]) if lines else None,
        "versions": {m: version(m) for m in ("torch", "transformers", "peft", "bm25s")},
    }
    record_path.write_text(json.dumps(records, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", help="run only these steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (cmd, done) in steps(args).items():
        if args.only and name not in args.only:
            continue
        adapter = next((a for k, a in ADAPTERS.items() if name.startswith(f"{k}-")), None)
        if adapter and not (Path(adapter) / "adapter_config.json").is_file():
            print(f"[{name}] skipped: no adapter at {adapter} yet", flush=True)
            continue
        run_step(name, cmd, done)


if __name__ == "__main__":
    main()
