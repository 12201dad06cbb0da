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
                   "--out", str(out), "--json", "--threads", str(threads), "--batch-size", "64")  # fmt: skip


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


def read(path: Path) -> list:
    from fireact.data.fireact_format import read_any

    return read_any(path) if path.is_file() else []


def compare_table(runs: dict[str, list]) -> list[str]:
    """EM, F1, format errors, searches, gold seen; the gain over the first run with McNemar and a
    paired bootstrap interval."""
    from fireact.data.evaluation import bootstrap_gain, episode_stats, mcnemar

    lines = ["| agent | EM | F1 | format errors | searches / episode | gold in an observation (right then) | "
             "vs SFT: +/-, McNemar p | EM gain, 95% bootstrap interval |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    base = next(iter(runs.values()))
    for name, trajs in runs.items():
        st = episode_stats(trajs)
        m, b = mcnemar(base, trajs), bootstrap_gain(base, trajs)
        vs = "-" if trajs is base else f"+{m['only_second']} / -{m['only_first']}, p={m['p_value']:.3f}"
        gain = "-" if trajs is base else f"{100 * b['gain']:+.1f} [{100 * b['low']:+.1f}, {100 * b['high']:+.1f}]"
        lines.append(f"| {name} ({st['n']}) | {100 * st['em']:.1f} | {100 * st['f1']:.1f} | "
                     f"{100 * st['format_errors']:.1f}% | {st['searches']:.2f} | {st['gold_seen']} "
                     f"({st['right_when_seen']}) | {vs} | {gain} |")  # fmt: skip
    lines += ["", "| failure class | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    stats = [episode_stats(t)["classes"] for t in runs.values()]
    lines += [f"| {c} | " + " | ".join(str(s[c]) for s in stats) + " |" for c in stats[0]]
    return lines


def rounds_table(rounds: list[dict], records: dict) -> list[str]:
    lines = ["| round | pool questions x G | pool EM (T=1) | kept | wiki-val EM | val format errors | "
             "sample / score / train / validate min | CPU min |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rounds:
        sec = r["seconds"]
        cpu = records.get(f"ei-r{r['round']}", {}).get("cpu_seconds")
        lines.append(f"| {r['round']} | {r['questions']} x {r['episodes'] // max(r['questions'], 1)} | "
                     f"{100 * r['success_rate']:.1f} | {r['kept']} | {100 * r['val_em']:.1f} | "
                     f"{100 * r['val_format_error_rate']:.1f}% | {sec['sample'] / 60:.1f} / {sec.get('score', 0) / 60:.2f} / "
                     f"{sec['train'] / 60:.1f} / "
                     f"{sec['validate'] / 60:.1f} | {'-' if cpu is None else f'{cpu / 60:.0f}'} |")  # fmt: skip
    return lines


def plot_rounds(rounds: list[dict], sft_val: list, path: Path) -> None:
    """Pool EM (what the agent earned while sampling, T=1) and held-out wiki-val EM (greedy) per
    agent: 0 is the SFT start, k the agent after round k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fireact.data.evaluation import summarize

    val = [100 * summarize(sft_val).em] + [100 * r["val_em"] for r in rounds]
    pool = [100 * r["success_rate"] for r in rounds]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(len(val)), val, "o-", label="wiki-val EM (100, greedy)")
    ax.plot(range(len(pool)), pool, "s--", label="wiki-train pool EM (T=1)")
    ax.set_xlabel("agent (0: SFT start, k: after expert-iteration round k)")
    ax.set_ylabel("EM %")
    ax.set_xticks(range(len(val)))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def report() -> str:
    """The tables of docs/on_policy.md, and its curve (docs/img/on_policy_ei.png)."""
    from steps import load_steps

    records = load_steps(OUT / "steps.json")
    rounds_path = EI_OUT / "rounds.json"
    rounds = json.loads(rounds_path.read_text()) if rounds_path.is_file() else []
    runs = {"SFT (quickstart)": read(OUT / "eval_sft-eval.jsonl")}
    for r in rounds:
        runs[f"expert iteration, round {r['round']}"] = read(OUT / f"eval_ei-r{r['round']}-eval.jsonl")
    runs = {k: v for k, v in runs.items() if v}
    lines = compare_table(runs) if runs else ["(no wiki-eval run finished yet)"]
    lines += ["", *rounds_table(rounds, records)]
    if rounds and (OUT / "eval_sft-val.jsonl").is_file():
        plot_rounds(rounds, read(OUT / "eval_sft-val.jsonl"), Path("docs/img/on_policy_ei.png"))
        lines.append("\n(curve: docs/img/on_policy_ei.png)")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", help="run only these steps")
    p.add_argument("--rounds", type=int, default=1, help="expert iteration rounds to run (and evaluate the last of)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--report", action="store_true", help="print the tables and draw the curves from finished runs")
    args = p.parse_args()
    if args.report:
        print(report())
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (cmd, done) in steps(args).items():
        if not args.only or name in args.only:
            print(json.dumps({"step": name, **run_step(OUT / "steps.json", name, cmd, done)}), flush=True)


if __name__ == "__main__":
    main()
