"""On-policy gains in the wiki world (issue 26): the SFT agent, improved on wiki-train, scored on
all 500 wiki-eval questions.

Steps, in order, each a public CLI command in a subprocess; the command, wall and CPU time and
library versions of each go to runs/on_policy/steps.json, and a finished step (its output file
exists) is skipped on a rerun, so an interrupted run resumes (expert iteration also resumes
after its last finished round):
  q-train, q-export  the quickstart SFT agent (configs/quickstart.yaml) -> runs/quickstart/adapter
  sft-val            the SFT agent on 100 held-out wiki-val questions (settings are chosen here)
  ei-rN              expert iteration round N (configs/on_policy/quickstart_wiki_ei.yaml)
  sft-eval, ei-eval  the SFT agent and the last round's agent on all 500 wiki-eval questions

    python experiments/on_policy.py [--only ...] [--rounds 1] [--threads 2]
    python experiments/on_policy.py --report     # the tables of docs/on_policy.md and docs/img/*.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from steps import run_step

OUT = Path("runs/on_policy")
SFT = Path("runs/quickstart")
EI_CONFIG = "configs/on_policy/quickstart_wiki_ei.yaml"
EI_OUT = OUT / "ei"


def fireact(*args: str) -> list[str]:
    return [sys.executable, "-m", "fireact", *args]


def eval_cmd(adapter: str, split: str, n: int, out: Path, threads: int) -> list[str]:
    return fireact("eval", "--adapter", adapter, "--split", split, "--n", str(n), "--tool", "wiki",
                   "--out", str(out), "--json", "--threads", str(threads), "--batch-size", "50")  # fmt: skip


def steps(args: argparse.Namespace) -> dict[str, tuple[list[str], Path]]:
    """name -> (command, the file that exists once it is done)."""
    adapter = str(SFT / "adapter")
    last = str(EI_OUT / f"round{args.rounds}" / "adapter")
    out = {
        "q-train": ([sys.executable, "-m", "fireact.train", "fit", "--config", "configs/quickstart.yaml"],
                    SFT / "checkpoints" / "last.ckpt"),
        "q-export": (fireact("export", "--ckpt", str(SFT / "checkpoints" / "last.ckpt"), "--out", adapter),
                     SFT / "adapter" / "adapter_config.json"),
        "sft-val": (eval_cmd(adapter, "wiki-val", 100, OUT / "eval_sft-val.jsonl", args.threads),
                    OUT / "eval_sft-val.jsonl"),
    }  # fmt: skip
    for k in range(1, args.rounds + 1):
        cmd = fireact("expert-iteration", "--config", EI_CONFIG, "--out", str(EI_OUT), "--rounds", str(k))
        out[f"ei-r{k}"] = (cmd, EI_OUT / f"round{k}" / "validation.jsonl")
    out["sft-eval"] = (eval_cmd(adapter, "wiki-eval", 500, OUT / "eval_sft-eval.jsonl", args.threads),
                       OUT / "eval_sft-eval.jsonl")  # fmt: skip
    out["ei-eval"] = (eval_cmd(last, "wiki-eval", 500, OUT / f"eval_ei-r{args.rounds}-eval.jsonl", args.threads),
                      OUT / f"eval_ei-r{args.rounds}-eval.jsonl")  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", help="run only these steps")
    p.add_argument("--rounds", type=int, default=1, help="expert iteration rounds to run (and evaluate the last of)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--report", action="store_true", help="print the tables and draw the curves from finished runs")
    args = p.parse_args()
    if args.report:
        from on_policy_report import report

        print(report(OUT, EI_OUT))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (cmd, done) in steps(args).items():
        if not args.only or name in args.only:
            print(json.dumps({"step": name, **run_step(OUT / "steps.json", name, cmd, done)}), flush=True)


if __name__ == "__main__":
    main()
