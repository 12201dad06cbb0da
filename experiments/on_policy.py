"""On-policy gains in the wiki world (issue 26): the SFT agent, improved on wiki-train, scored on
all 500 wiki-eval questions.

Steps, in order, each a public CLI command in a subprocess; the command, wall and CPU time and
library versions of each go to runs/on_policy/steps.json, and a finished step (its output file
exists) is skipped on a rerun, so an interrupted run resumes (expert iteration also resumes
after its last finished round):
  q-train, q-export  the quickstart SFT agent (configs/quickstart.yaml) -> runs/quickstart/adapter
  sft-val            the SFT agent on wiki-val questions 100-199, the held-out slice each expert-
                     iteration round is validated on (settings are chosen there)
  ei-rN              expert iteration round N (configs/on_policy/quickstart_wiki_ei.yaml)
  eih-rN             the same, plus hindsight finishes of the unsolved questions (`--hindsight`)
  eig50-rN           the same, plus gold-path demonstrations of the unsolved questions (`--gold-path`)
  eig-rN             that, trained one epoch a round (configs/on_policy/quickstart_wiki_ei_gold.yaml);
                     round 1 of eih, eig50 and eig trains on the very episodes ei-r1 sampled (copied)
  eig50-ei-rN        expert iteration from eig50's round-1 agent (its own rewarded episodes only)
  grpo-train         GRPO from the SFT agent on wiki-train (configs/on_policy/quickstart_wiki_grpo.yaml: F1
                     reward + retrieval bonus; a checkpoint every step, a killed run resumes from the last)
  grpo-export        its checkpoint with the best live wiki-val EM -> runs/on_policy/grpo/adapter
  grpo-val           that adapter on wiki-val 100-199 (the episodes, for the failure classes)
  ei-grpo-*          the same from expert iteration's round-2 agent
                     (configs/on_policy/quickstart_wiki_grpo_after_ei.yaml)
  grpo-more-*        32 more GRPO updates from grpo's agent (quickstart_wiki_grpo_more.yaml)
  grpo-refill-*      GRPO with DAPO's refill of equal-reward groups (quickstart_wiki_grpo_refill.yaml)
  grpo-gold-*        GRPO with the gold-path teacher's SFT loss on unsolved questions (quickstart_wiki_grpo_gold.yaml)
  c-sft-eval         the reproduction's (c) agent on all 500 wiki-eval questions (the same command as every eval here)
  c-grpo-*           GRPO from (c) (repro_wiki_grpo.yaml), compared with c-sft-eval
  best-eval          the arm with the higher wiki-val EM after its last round, on all 500 wiki-eval
                     questions (wiki-eval chooses nothing)
  sft-eval           the SFT agent on the same 500
  other-eval         the runner-up arm on wiki-eval, for the record
  grpo-eval          the GRPO agent on all 500 wiki-eval questions (ei-grpo-eval: the other one)
  ARM-rN-eval        any arm's round N on wiki-eval, for the record (only when named in --only)

    python experiments/on_policy.py [--only ...] [--rounds 1] [--threads 2]
    python experiments/on_policy.py --report     # the tables of docs/results/on_policy.md and docs/img/*.png
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import yaml
from steps import run_step, step_cpu_seconds

OUT = Path("runs/on_policy")
SFT = Path("runs/quickstart")
EI_CONFIG = "configs/on_policy/quickstart_wiki_ei.yaml"
GRPO_ARMS = {  # arm -> its config, whose default_root_dir is OUT / arm
    "grpo": "configs/on_policy/quickstart_wiki_grpo.yaml",
    "ei-grpo": "configs/on_policy/quickstart_wiki_grpo_after_ei.yaml",
    "grpo-more": "configs/on_policy/quickstart_wiki_grpo_more.yaml",  # from grpo's agent
    "grpo-refill": "configs/on_policy/quickstart_wiki_grpo_refill.yaml",  # grpo + DAPO's refill
    "grpo-gold": "configs/on_policy/quickstart_wiki_grpo_gold.yaml",  # grpo + gold-path teacher (DGPO)
    "c-grpo": "configs/on_policy/repro_wiki_grpo.yaml",  # grpo from the reproduction's (c) agent
}
C_SFT = Path("runs/repro/react/adapter")  # (c): experiments/reproduce.py --only c
C_BASE = "SFT (c: FireAct's 500 GPT-4 trajectories)"
GRPO_BASES = {"c-grpo": C_BASE}  # arm -> the SFT agent it starts from and is compared with, if not the quickstart
BASE_EVALS = {C_BASE: "c-sft-eval"}  # such an SFT agent -> the step that scores it on wiki-eval
GRPO_START = {
    "ei-grpo": ["ei-r1", "ei-r2"],
    "grpo-more": ["grpo-train"],
}  # arm -> the steps that made its start (their CPU time counts)
ARMS = {  # arm -> its expert-iteration arguments
    "ei": ["--config", EI_CONFIG],
    "eih": ["--config", EI_CONFIG, "--hindsight"],
    "eig50": ["--config", EI_CONFIG, "--gold-path"],  # the same, trained 50 steps (a third of an epoch)
    "eig": ["--config", "configs/on_policy/quickstart_wiki_ei_gold.yaml"],
    "eig50-ei": ["--config", "configs/on_policy/quickstart_wiki_ei_after_gold.yaml"],  # from eig50's round 1
}
SHARED_START = ("eih", "eig50", "eig")  # arms whose round 1 samples from the SFT start, as ei's does
PARENT = {"eig50-ei": "eig50"}  # arm -> the arm whose round-1 agent it starts from


def fireact(*args: str) -> list[str]:
    return [sys.executable, "-m", "fireact", *args]


def eval_cmd(adapter: str, split: str, n: int, out: Path, threads: int, offset: int = 0) -> list[str]:
    return fireact("eval", "--adapter", adapter, "--split", split, "--n", str(n), "--offset", str(offset), "--tool", "wiki",
                   "--out", str(out), "--json", "--threads", str(threads), "--batch-size", "50")  # fmt: skip


def steps(args: argparse.Namespace) -> dict[str, tuple[list[str], Path]]:
    """name -> (command, the file that exists once it is done)."""
    adapter = str(SFT / "adapter")
    out = {
        "q-train": ([sys.executable, "-m", "fireact.train", "fit", "--config", "configs/quickstart.yaml"],
                    SFT / "checkpoints" / "last.ckpt"),
        "q-export": (fireact("export", "--ckpt", str(SFT / "checkpoints" / "last.ckpt"), "--out", adapter),
                     SFT / "adapter" / "adapter_config.json"),
        "sft-val": (eval_cmd(adapter, "wiki-val", 100, OUT / "eval_sft-val.jsonl", args.threads, offset=100),
                    OUT / "eval_sft-val.jsonl"),
    }  # fmt: skip

    def arm_steps(arm: str) -> None:
        for k in range(1, args.rounds + 1):
            cmd = fireact("expert-iteration", *ARMS[arm], "--out", str(OUT / arm), "--rounds", str(k))
            out[f"{arm}-r{k}"] = (cmd, OUT / arm / f"round{k}" / "validation.jsonl")

    for arm in ARMS:
        arm_steps(arm)
    for arm, config in GRPO_ARMS.items():
        root = OUT / arm
        best = next(iter((root / "checkpoints").glob("best-*.ckpt")), root / "checkpoints" / "best.ckpt")
        out |= {
            f"{arm}-train": ([sys.executable, "-m", "fireact.train", "fit", "--config", config, "--ckpt_path", "last"],
                             root / "checkpoints" / "last.ckpt"),
            f"{arm}-export": (fireact("export", "--ckpt", str(best), "--out", str(root / "adapter")),
                              root / "adapter" / "adapter_config.json"),
            f"{arm}-val": (eval_cmd(str(root / "adapter"), "wiki-val", 100, root / "validation.jsonl", args.threads, offset=100),
                           root / "validation.jsonl"),
        }  # fmt: skip

    def arm_eval(arm: str, k: int = args.rounds) -> tuple[list[str], Path]:
        path = OUT / f"eval_{arm}-r{k}-eval.jsonl"
        return eval_cmd(str(OUT / arm / f"round{k}" / "adapter"), "wiki-eval", 500, path, args.threads), path

    ranked = ranked_arms(args.rounds)
    out["best-eval"] = arm_eval(ranked[0])
    out["sft-eval"] = (eval_cmd(adapter, "wiki-eval", 500, OUT / "eval_sft-eval.jsonl", args.threads),
                       OUT / "eval_sft-eval.jsonl")  # fmt: skip
    out["other-eval"] = arm_eval(ranked[1])
    out["c-sft-eval"] = (eval_cmd(str(C_SFT), "wiki-eval", 500, OUT / "eval_c-sft-eval.jsonl", args.threads),
                         OUT / "eval_c-sft-eval.jsonl")  # fmt: skip
    for arm in GRPO_ARMS:
        path = OUT / f"eval_{arm}-eval.jsonl"
        out[f"{arm}-eval"] = (eval_cmd(str(OUT / arm / "adapter"), "wiki-eval", 500, path, args.threads), path)
    for arm in ARMS:  # any arm's round on wiki-eval, for the record: run only when named in --only
        for k in range(1, args.rounds + 1):
            out[f"{arm}-r{k}-eval"] = arm_eval(arm, k)
    return out


def read(path: Path) -> list:
    from fireact.data.fireact_format import read_any

    return read_any(path) if path.is_file() else []


def compare_table(runs: dict[str, list]) -> list[str]:
    """EM, F1, format errors, searches, gold seen; the gain over the first run with McNemar and a
    paired bootstrap interval."""
    from fireact.data.evaluation import FAILURE_CLASSES, bootstrap_gain, episode_stats, mcnemar

    lines = ["| agent | EM | F1 | format errors | searches / episode | gold in an observation (right then) | "
             "vs SFT: +/-, McNemar p | EM gain, 95% bootstrap interval |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    base = next(iter(runs.values()))
    stats = {name: episode_stats(trajs) for name, trajs in runs.items()}
    for name, trajs in runs.items():
        st = stats[name]
        m, b = mcnemar(base, trajs), bootstrap_gain(base, trajs)
        vs = "-" if trajs is base else f"+{m['only_second']} / -{m['only_first']}, p={m['p_value']:.3f}"
        gain = "-" if trajs is base else f"{100 * b['gain']:+.1f} [{100 * b['low']:+.1f}, {100 * b['high']:+.1f}]"
        lines.append(f"| {name} ({st['n']}) | {100 * st['em']:.1f} | {100 * st['f1']:.1f} | "
                     f"{100 * st['format_errors']:.1f}% | {st['searches']:.2f} | {st['gold_seen']} "
                     f"({st['right_when_seen']}) | {vs} | {gain} |")  # fmt: skip
    lines += ["", "| failure class | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    lines += [f"| {c} | " + " | ".join(str(st["classes"][c]) for st in stats.values()) + " |" for c in FAILURE_CLASSES]
    return lines


GRPO_NAMES = {
    "grpo": "GRPO (F1 + retrieval bonus)",
    "ei-grpo": "expert iteration (round 2), then GRPO",
    "grpo-more": "GRPO, then 32 more updates",
    "grpo-refill": "GRPO with refill (DAPO)",
    "grpo-gold": "GRPO + gold-path teacher (DGPO)",
    "c-grpo": "(c), then GRPO (F1 + retrieval bonus)",
}
ARM_NAMES = {"ei": "expert iteration", "eih": "expert iteration + hindsight",
             "eig50": "expert iteration + gold paths, 50 steps", "eig": "expert iteration + gold paths, 1 epoch",
             "eig50-ei": "gold paths (50 steps), then expert iteration"}  # fmt: skip


def rounds_table(arms: dict[str, list[dict]], records: dict) -> list[str]:
    lines = ["| arm | round | pool questions x G | pool EM (T=1) | kept (written: hindsight / gold path) | wiki-val EM | "
             "val format errors | sample / score / train / validate min | CPU min |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm, rounds in arms.items():
        for r in rounds:
            record = records.get(f"{arm}-r{r['round']}")
            sec, cpu = r["seconds"], step_cpu_seconds(record) if record else None
            lines.append(f"| {ARM_NAMES[arm]} | {r['round']} | {r['questions']} x {r['episodes'] // max(r['questions'], 1)} | "
                         f"{100 * r['success_rate']:.1f} | {r['kept']} ({r.get('hindsight', 0)} / {r.get('gold_path', 0)}) | {100 * r['val_em']:.1f} | "
                         f"{100 * r['val_format_error_rate']:.1f}% | {sec['sample'] / 60:.1f} / {sec.get('score', 0) / 60:.2f} / "
                         f"{sec['train'] / 60:.1f} / {sec['validate'] / 60:.1f} | {'-' if cpu is None else f'{cpu / 60:.0f}'} |")  # fmt: skip
    return lines


def plot_rounds(arms: dict[str, list[dict]], sft_val_em: float, path: Path) -> None:
    """Held-out wiki-val EM (greedy) and pool EM (what the agent earned while sampling, T=1) per agent:
    0 is the SFT start, k the agent after round k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    longest = 0
    for arm, rounds in arms.items():
        before = arms.get(PARENT[arm], [])[:1] if arm in PARENT else []  # its start's round
        val = [100 * sft_val_em] + [100 * r["val_em"] for r in before + rounds]
        marker = "osD^vP"[len(ax.lines) % 6]  # a shape per arm: points that coincide stay visible
        ax.plot(range(len(val)), val, marker=marker, fillstyle="none", markersize=8, alpha=0.85,
                label=f"{ARM_NAMES[arm]}: wiki-val EM (100, greedy)")  # fmt: skip
        longest = max(longest, len(val))
    pool = [100 * r["success_rate"] for r in arms.get("ei", [])]  # round k samples with agent k-1
    ax.plot(range(len(pool)), pool, "s--", color="gray", label="wiki-train pool EM while sampling (T=1)")
    ax.set_xlabel("agent (0: SFT start, k: after round k)")
    ax.set_ylabel("EM %")
    ax.set_xticks(range(longest))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def run_versions(root: Path) -> list[Path]:
    """A GRPO run's logger versions, oldest first: a resumed run logs into a new one, whose rows win."""
    return sorted((root / "metrics").glob("version_*"), key=lambda d: int(d.name.split("_")[1]))


def grpo_metrics(root: Path) -> list[dict]:
    """A GRPO run's logged rows by step."""
    import csv

    by_step: dict[int, dict] = {}
    for log in [v / "metrics.csv" for v in run_versions(root) if (v / "metrics.csv").is_file()]:
        for r in csv.DictReader(log.open()):
            row = by_step.setdefault(int(r["step"]), {"step": int(r["step"])})
            row.update({k: float(v) for k, v in r.items() if v and k != "step"})
    return [by_step[k] for k in sorted(by_step)]


def grpo_validations(root: Path) -> dict[int, list]:
    """A GRPO run's live wiki-val episodes by the number of updates before them (the callback's
    rollouts/stepNNNNNN[_before].jsonl)."""
    runs = {}
    for log in run_versions(root):
        for path in sorted(log.glob("rollouts/step*.jsonl")):
            runs[int(path.name[4:10])] = read(path)
    return dict(sorted(runs.items()))


PHASE_ROWS = (  # a GRPO run's logged key -> its row in the first/last updates table, and its scale
    ("train/reward_mean", "reward of the sampled wiki-train episodes", 1),
    ("train/em", "EM of the sampled episodes, %", 100),
    ("train/f1", "F1 of the sampled episodes, %", 100),
    ("train/gold_seen", "gold in an observation, %", 100),
    ("train/format_error_rate", "format errors of the sampled episodes, %", 100),
    ("train/zero_advantage_groups", "groups with equal rewards (no gradient), %", 100),
    ("train/sampling_seconds", "sampling, s an update", 1),
    ("train/training_seconds", "training (forward and backward), s an update", 1),
)


def phase_table(logged: list[dict], name: str, k: int = 8) -> list[str]:
    """A GRPO run's sampled metrics and phase times (its `grpo_metrics`), mean over its first and last k updates."""
    rows = [r for r in logged if "train/reward_mean" in r]
    first, last = rows[:k], rows[-k:]

    def mean(part: list[dict], key: str, scale: float) -> str:
        vals = [scale * r[key] for r in part if key in r]
        return f"{sum(vals) / len(vals):.3g}" if vals else "-"

    lines = [f"| {name}, {len(rows)} updates | first {len(first)} | last {len(last)} |", "|---|---|---|"]
    return lines + [f"| {label} | {mean(first, key, s)} | {mean(last, key, s)} |" for key, label, s in PHASE_ROWS]


def plot_grpo(root: Path, title: str, path: Path) -> None:
    """GRPO's reward, EM, F1 and gold-seen rate on its sampled wiki-train episodes (5-step means) and
    its live wiki-val EM (greedy), against the updates made before them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fireact.data.evaluation import summarize

    rows = grpo_metrics(root)
    first = run_versions(root)[0]  # the reward's weights and G, as the run was configured
    hp = yaml.safe_load((first / "hparams.yaml").read_text())
    per_step = yaml.safe_load((first / "config.yaml").read_text())["data"]["init_args"]
    reward = f"reward ({hp['reward'].upper()} + {hp['seen_bonus']} seen - {hp['format_penalty']} no finish)"
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    for key, label in (("train/reward_mean", reward), ("train/em", "EM"),
                       ("train/f1", "F1"), ("train/gold_seen", "gold in an observation")):  # fmt: skip
        pts = [(r["step"], 100 * r[key]) for r in rows if key in r]
        if pts:
            window = [[v for _, v in pts[max(0, i - 4) : i + 1]] for i in range(len(pts))]
            ax.plot(
                [s for s, _ in pts],
                [sum(w) / len(w) for w in window],
                label=f"sampled wiki-train: {label}, 5-step mean",
            )
    val = [(step, 100 * summarize(trajs).em) for step, trajs in grpo_validations(root).items()]
    if val:
        ax.plot(*zip(*val), "o-", color="black", label="wiki-val EM (100-199, greedy)")
    handles = ax.get_legend_handles_labels()
    nll = [(r["step"], r["train/gold_path_nll"]) for r in rows if r.get("train/gold_paths")]
    if nll:  # the teacher term (gold_path_coef): how well the policy fits the step's demonstrations
        right = ax.twinx()
        right.plot(
            *zip(*nll), ":", color="gray", label=f"gold-path demonstrations' NLL (x{hp['gold_path_coef']}), right axis"
        )
        right.set_ylabel("nats per token")
        handles = tuple(a + b for a, b in zip(handles, right.get_legend_handles_labels()))
    ax.set_title(title)
    ax.set_xlabel(f"updates made (each on {per_step['questions_per_step']} questions x G={hp['group_size']} episodes)")
    ax.set_ylabel("%")
    ax.legend(*handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def cost_lines(arms: dict[str, list[dict]], runs: dict[str, list], records: dict) -> list[str]:
    """CPU-hours of each scored agent (sampling, training, validation) per wiki-eval EM point gained."""
    from fireact.data.evaluation import summarize

    scored = []  # (name, wiki-eval episodes, CPU-hours that made the agent, its SFT start's episodes)
    for arm, rounds in arms.items():
        for k, last in enumerate(rounds, 1):  # the rounds up to each scored one
            cpu = sum(step_cpu_seconds(records.get(f"{arm}-r{r['round']}", {})) for r in rounds[:k]) / 3600
            name = f"{ARM_NAMES[arm]}, round {last['round']}"
            scored.append((f"{ARM_NAMES[arm]}, {k} round(s)", runs.get(name), cpu, runs.get("SFT (quickstart)")))
    for arm, name in GRPO_NAMES.items():  # its training (validations included) and its start's rounds
        steps_of = [*GRPO_START.get(arm, []), f"{arm}-train"]
        cpu = sum(step_cpu_seconds(records.get(step, {})) for step in steps_of) / 3600
        scored.append((name, runs.get(name), cpu, runs.get(GRPO_BASES.get(arm, "SFT (quickstart)"))))
    lines = []
    for name, trajs, cpu, base in scored:
        if base and trajs and cpu > 0:  # a step that was not recorded has no CPU time
            gain = 100 * (summarize(trajs).em - summarize(base).em)
            per = f"{cpu / gain:.2f} CPU-hours per EM point" if gain > 0 else "no gain"
            lines.append(f"- {name}: {cpu:.2f} CPU-hours for {gain:+.1f} EM: {per}")
    return ["", *lines] if lines else []


def report() -> str:
    """The tables of docs/results/on_policy.md, and its curve (docs/img/on_policy_wiki.png)."""
    from steps import load_steps

    from fireact.data.evaluation import summarize

    records = load_steps(OUT / "steps.json")
    arms = {arm: json.loads((OUT / arm / "rounds.json").read_text()) for arm in ARMS
            if (OUT / arm / "rounds.json").is_file()}  # fmt: skip
    runs = {"SFT (quickstart)": read(OUT / "eval_sft-eval.jsonl")}
    for arm, rounds in arms.items():  # every round of an arm that was scored on wiki-eval
        for r in rounds:
            runs[f"{ARM_NAMES[arm]}, round {r['round']}"] = read(OUT / f"eval_{arm}-r{r['round']}-eval.jsonl")
    runs |= {name: read(OUT / f"eval_{arm}-eval.jsonl") for arm, name in GRPO_NAMES.items() if arm not in GRPO_BASES}
    runs = {k: v for k, v in runs.items() if v}
    lines = compare_table(runs) if runs else ["(no wiki-eval run finished yet)"]
    other = {}  # the arms from another SFT agent, each group against its start
    for base, step in BASE_EVALS.items():
        group = {base: read(OUT / f"eval_{step}.jsonl")}
        group |= {GRPO_NAMES[arm]: read(OUT / f"eval_{arm}-eval.jsonl") for arm, b in GRPO_BASES.items() if b == base}
        group = {k: v for k, v in group.items() if v}
        if base in group:
            lines += ["", f"From {base}:", "", *compare_table(group)]
            other |= group
    lines += cost_lines(arms, runs | other, records)
    if arms:
        lines += ["", *rounds_table(arms, records)]
    val = {"SFT (quickstart)": read(OUT / "eval_sft-val.jsonl")}
    val |= {f"{ARM_NAMES[arm]}, round {r['round']}": read(OUT / arm / f"round{r['round']}" / "validation.jsonl")
            for arm, rounds in arms.items() for r in rounds}  # fmt: skip
    val |= {name: read(OUT / arm / "validation.jsonl") for arm, name in GRPO_NAMES.items()
            if arm not in GRPO_BASES and (OUT / arm / "validation.jsonl").is_file()}  # fmt: skip
    if all(val.values()):
        lines += ["", "wiki-val questions 100-199 (greedy), where settings are chosen:", "", *compare_table(val)]
    if arms and (OUT / "eval_sft-val.jsonl").is_file():
        plot_rounds(arms, summarize(read(OUT / "eval_sft-val.jsonl")).em, Path("docs/img/on_policy_wiki.png"))
        lines.append("\n(curve: docs/img/on_policy_wiki.png)")
    for arm, name in GRPO_NAMES.items():
        if logged := grpo_metrics(OUT / arm):
            plot_grpo(OUT / arm, name, Path(f"docs/img/on_policy_wiki_{arm}.png"))
            lines += ["", *phase_table(logged, name), f"({name}: docs/img/on_policy_wiki_{arm}.png)"]
    return "\n".join(lines)


def last_round(arm: str) -> dict | None:
    path = OUT / arm / "rounds.json"
    return json.loads(path.read_text())[-1] if path.is_file() else None


def ranked_arms(rounds: int) -> list[str]:
    """The arms by wiki-val EM after `rounds` rounds, best first (ties: the order of ARMS)."""

    def val_em(arm: str) -> float:
        r = last_round(arm)
        return r["val_em"] if r and r["round"] == rounds else -1.0

    return sorted(ARMS, key=val_em, reverse=True)


def share_sampling(step: str) -> None:
    """Round 1 of an arm with the SFT start trains on the plain arm's sampled episodes."""
    arm = step.removesuffix("-r1")
    source, target = OUT / "ei" / "round1" / "sampled.jsonl", OUT / arm / "round1" / "sampled.jsonl"
    if step.endswith("-r1") and arm in SHARED_START and source.is_file() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


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
    for name in steps(args):
        cmd, done = steps(args)[name]  # built again each time: the evals follow what the arms reached
        named = args.only and name in args.only
        if named or (not args.only and not re.fullmatch(r".+-r\d+-eval", name)):
            if name in ("best-eval", "other-eval") and last_round(ranked_arms(args.rounds)[0]) is None:
                print(f"[{name}] skipped: no finished expert-iteration arm yet", flush=True)
                continue
            share_sampling(name)
            print(json.dumps({"step": name, **run_step(OUT / "steps.json", name, cmd, done)}), flush=True)


if __name__ == "__main__":
    main()
