"""Small-scale reproduction of FireAct's HotpotQA settings with SmolLM2-135M on a CPU (issue 7).

On the first N questions of the paper's HotpotQA dev selection (Random(233)), offline snapshot search,
greedy decoding, ReAct format, SmolLM2-135M-Instruct:
  a  few-shot ReAct prompting (2 GPT-4 exemplars)           (paper Table 2, "ReAct" prompting)
  b  zero-shot ReAct prompting                              (the untuned model without exemplars)
  c  FireAct: LoRA on the 500 HotpotQA ReAct trajectories   (configs/repro/smollm2_hotpotqa_react.yaml)
  d  FireAct: LoRA on the multi-method HotpotQA mix         (configs/repro/smollm2_hotpotqa_multimethod.yaml)
  e  c and d with noisy search: with p=0.5 the tool answers "None" or a random earlier observation
     (paper Table 4)
  c-last      c's last checkpoint (2 epochs) instead of the one kept by held-out rollout EM
  c-k2, d-k2  c and d with the top 2 BM25 snippets per uncached search instead of 1 (more recall)
  f-grpo      c improved by GRPO on its own sampled rollouts, reward = EM (configs/repro/smollm2_hotpotqa_grpo.yaml)
  f-ei        c improved by expert iteration (configs/repro/smollm2_hotpotqa_expert_iteration.yaml)

Every step runs the public CLI in a subprocess. The command, wall time and result of each step go to
OUT/steps.json; finished steps are skipped on a rerun, so an interrupted run resumes. The report
(OUT/results.md and OUT/em_by_setting.png, and OUT/on_policy_curves.png once f-* ran) is rebuilt from
steps.json at the end.

    python experiments/reproduce.py [--n 100] [--threads 2] [--batch-size 32] [--only a b c ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

OUT = Path("runs/repro")  # the training configs write under here too
PY = [sys.executable, "-m"]
SETTINGS = {  # name -> (label, adapter run, extra eval args)
    "a": ("few-shot ReAct prompting (2-shot)", None, ["--few-shot", "2"]),
    "b": ("zero-shot ReAct prompting", None, []),
    "c": ("FireAct: 500 HotpotQA ReAct", "react", []),
    "d": ("FireAct: HotpotQA ReAct+CoT+Reflexion", "multimethod", []),
    "e-c-none": ("(c) + noise: None", "react", ["--noise", "nothing"]),
    "e-c-random": ("(c) + noise: random", "react", ["--noise", "random"]),
    "e-d-none": ("(d) + noise: None", "multimethod", ["--noise", "nothing"]),
    "e-d-random": ("(d) + noise: random", "multimethod", ["--noise", "random"]),
    "c-last": ("(c) after 2 epochs (the checkpoint not kept)", "react/last", []),
    "c-k2": ("(c), 2 BM25 snippets per search", "react", ["--search-k", "2"]),
    "d-k2": ("(d), 2 BM25 snippets per search", "multimethod", ["--search-k", "2"]),
    "f-grpo": ("(c) + GRPO on its own rollouts (EM reward)", "grpo", []),
    "f-ei": ("(c) + expert iteration (EM-filtered own rollouts)", "expert_iteration", []),
}
EI_CONFIG = "configs/repro/smollm2_hotpotqa_expert_iteration.yaml"


def load_steps() -> dict:
    path = OUT / "steps.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_step(steps: dict, name: str, cmd: list[str], done: Path) -> dict:
    """Run `cmd` unless `done` exists; record the command line, wall time and the last JSON line printed."""
    if name in steps and done.exists():
        return steps[name]
    print(f"[{name}] {shlex.join(cmd)}", flush=True)
    start, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not done.exists():
        sys.exit(f"[{name}] failed with exit code {proc.returncode}: {shlex.join(cmd)}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    record = {
        "cmd": shlex.join(["python", *cmd[1:]]),
        "seconds": round(time.monotonic() - start, 1),
        # CPU time of the step's processes: unlike the wall time, not inflated if the run was paused
        "cpu_seconds": round(used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime, 1),
        "result": json.loads(lines[-1]) if lines else None,
    }
    steps.update(load_steps())  # another invocation may have recorded steps meanwhile
    steps[name] = record
    (OUT / "steps.json").write_text(json.dumps(steps, indent=1))
    return record


def adapter_dir(run: str) -> Path:
    if run == "expert_iteration":  # the last round's adapter
        rounds = yaml.safe_load(Path(EI_CONFIG).read_text())["rounds"]
        return OUT / run / f"round{rounds}" / "adapter"
    base, _, which = run.partition("/")
    return OUT / base / ("adapter-last" if which == "last" else "adapter")


def train_and_export(steps: dict, run: str) -> None:
    """Train, then export the checkpoint ModelCheckpoint kept as best by live-rollout EM on held-out
    dev questions (100-119, not the scored ones), or the last one for "RUN/last"."""
    if run == "expert_iteration":  # samples, trains and exports every round itself
        run_step(steps, "train-expert_iteration", [*PY, "fireact", "expert-iteration", "--config", EI_CONFIG],
                 adapter_dir(run) / "adapter_config.json")  # fmt: skip
        return
    base, _, which = run.partition("/")
    last = OUT / base / "checkpoints" / "last.ckpt"
    train = [*PY, "fireact.train", "fit", "--config", f"configs/repro/smollm2_hotpotqa_{base}.yaml"]
    run_step(steps, f"train-{base}", train, last)
    (ckpt,) = [last] if which == "last" else (OUT / base / "checkpoints").glob("best-*.ckpt")
    export = [*PY, "fireact", "export", "--ckpt", str(ckpt), "--out", str(adapter_dir(run))]
    run_step(steps, f"export-{run}", export, adapter_dir(run) / "adapter_config.json")


def evaluate(steps: dict, setting: str, args: argparse.Namespace) -> None:
    _, run, extra = SETTINGS[setting]
    out = OUT / f"eval_{setting}.jsonl"
    cmd = [*PY, "fireact", "eval", "--task", "hotpotqa", "--split", "dev", "--n", str(args.n), "--out", str(out)]
    cmd += ["--json", "--threads", str(args.threads), "--batch-size", str(args.batch_size), *extra]
    if run is not None:
        cmd += ["--adapter", str(adapter_dir(run))]
    run_step(steps, f"eval-{setting}", cmd, out)


def report(steps: dict, n: int) -> None:
    """results.md (a table like the paper's Tables 2-4) and em_by_setting.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, names, ems = [], [], []
    for setting, (label, run, _) in SETTINGS.items():
        step = steps.get(f"eval-{setting}")
        if not step:
            continue
        r = step["result"]
        train = steps.get(f"train-{run.split('/')[0]}", {}).get("seconds") if run else None
        rows.append(
            f"| {setting} | {label} | {100 * r['em']:.1f} | {100 * r['f1']:.1f} | "
            f"{r['turns_mean']:.2f} ± {r['turns_std']:.2f} | {100 * r['format_error_rate']:.1f} | "
            f"{r['seconds_per_question']:.2f} | {f'{train / 60:.1f}' if train else '-'} |"
        )
        names.append(setting)
        ems.append(100 * r["em"])
    table = [
        f"HotpotQA dev, first {n} questions of the paper's selection, SmolLM2-135M-Instruct, snapshot search.",
        "",
        "| setting | agent | EM | F1 | turns (mean ± std) | format errors % | s / question | training min |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    (OUT / "results.md").write_text("\n".join(table) + "\n")
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(names, ems, color=["#888" if s in ("a", "b") else "#d62728" for s in names])
    ax.set_ylabel("EM (%)")
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_title(f"SmolLM2-135M on HotpotQA dev ({n} questions): EM per setting")
    for i, v in enumerate(ems):
        ax.text(i, v + 0.3, f"{v:.0f}", ha="center")
    fig.tight_layout()
    fig.savefig(OUT / "em_by_setting.png", dpi=120)
    plt.close(fig)
    on_policy_curves(plt)
    print("\n".join(table))


def on_policy_curves(plt) -> None:
    """on_policy_curves.png: GRPO's training reward and held-out rollout EM over steps, and expert
    iteration's held-out EM per round (round 0 is the (c) start, GRPO's step-0 validation)."""
    logs = sorted((OUT / "grpo").glob("*/version_*/metrics.csv"), key=lambda f: f.stat().st_mtime)
    if not logs:
        return
    rows = list(csv.DictReader(logs[-1].open()))
    series = {
        key: [(int(r["step"]), 100 * float(r[key])) for r in rows if r.get(key)]
        for key in ("train/reward_mean", "val/em", "val/format_error_rate")
    }
    fig, (ax, ax_ei) = plt.subplots(1, 2, figsize=(11, 4))
    reward = series["train/reward_mean"]
    if reward:
        ax.plot(*zip(*reward), color="#bbb", label="reward (training questions, sampled)")
    if len(reward) >= 5:
        smooth = [sum(v for _, v in reward[max(0, i - 4) : i + 1]) / len(reward[max(0, i - 4) : i + 1])
                  for i in range(len(reward))]  # fmt: skip
        ax.plot([s for s, _ in reward], smooth, color="#555", label="reward, 5-step mean")
    for key, color in (("val/em", "#d62728"), ("val/format_error_rate", "#1f77b4")):
        if series[key]:
            ax.plot(*zip(*series[key]), "o-", color=color, label=f"{key} (dev 100-119, greedy)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("%")
    ax.set_title("GRPO from (c)")
    ax.legend(fontsize=8)
    rounds_file = OUT / "expert_iteration" / "rounds.json"
    if rounds_file.is_file() and series["val/em"]:
        rounds = json.loads(rounds_file.read_text())
        ems = [series["val/em"][0][1], *(100 * r["val_em"] for r in rounds)]
        ax_ei.plot(range(len(ems)), ems, "o-", color="#d62728", label="val EM (dev 100-119, greedy)")
        ax_ei.set_xticks(range(len(ems)))
        ax_ei.set_xlabel("expert-iteration round")
        ax_ei.set_title("Expert iteration from (c)")
        ax_ei.legend(fontsize=8)
    else:
        ax_ei.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "on_policy_curves.png", dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100, help="HotpotQA dev questions (the paper's selection)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for the evals")
    p.add_argument("--batch-size", type=int, default=32, help="episodes decoded together")
    p.add_argument("--only", nargs="+", choices=list(SETTINGS), help="run only these settings")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    steps = load_steps()
    for setting in args.only or list(SETTINGS):
        run = SETTINGS[setting][1]
        if run is not None:
            train_and_export(steps, run)
        evaluate(steps, setting, args)
    report(load_steps(), args.n)


if __name__ == "__main__":
    main()
