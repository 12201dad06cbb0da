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
  g-n100, g-n200, g-n300
              data scaling (the paper's EM against the number of trajectories): c's recipe on 100/200/300
              of the 500 trajectories, drawn by the DataModule's seeded count mixing; same epochs as c
              (2), so steps scale with the data, as the paper varies data at a fixed number of epochs
              (same steps would show 100 trajectories 10 times); c is the 500 point
  h-unmasked  c's recipe with mask_observations: false (observations in the loss, as FireAct's released
              runs trained), same data, steps and questions
  m           multi-task (the paper's multi-task table): c's recipe on ReAct trajectories of HotpotQA,
              StrategyQA and MMLU drawn from multitask.json (450 HotpotQA, 200 StrategyQA, 150 MMLU), 2 epochs
  s-cot, s-reflexion
              single-method agents for the method-choice study (the paper's Table 4 references): c's recipe
              on the CoT-only or Reflexion-only HotpotQA trajectories (c is the ReAct one), 2 epochs; the
              report gives d's method choice and the random-method and oracle EM of {s-cot, c, s-reflexion}
  a@T, c@T, m@T
              the prompted model, c and m on task T: strategyqa (dev), mmlu (dev) or bamboogle (test,
              a task none of them trained on), first N questions of the same seeded selection

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
import sys
from pathlib import Path

import steps as steps_file
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
SETTINGS.update({f"g-n{n}": (f"FireAct: {n} HotpotQA ReAct (2 epochs)", f"react-n{n}", []) for n in (100, 200, 300)})
SETTINGS["h-unmasked"] = ("(c) with observations in the loss", "react-unmasked", [])
SETTINGS["s-cot"] = ("FireAct: HotpotQA CoT only", "cot", [])
SETTINGS["s-reflexion"] = ("FireAct: HotpotQA Reflexion only", "reflexion", [])
SETTINGS["m"] = ("FireAct: multi-task ReAct (HotpotQA+StrategyQA+MMLU)", "multitask", [])
CROSS_TASKS = {"strategyqa": "dev", "mmlu": "dev", "bamboogle": "test"}  # task -> split; HotpotQA is dev
for _agent in ("a", "c", "m"):
    for _task in CROSS_TASKS:
        SETTINGS[f"{_agent}@{_task}"] = (f"{SETTINGS[_agent][0]}, on {_task}", *SETTINGS[_agent][1:])
# derived runs: c's config with these changes (data: init_args keys; max_steps: trainer)
VARIANTS = {
    **{f"react-n{n}": {"mix": {"hotpotqa/react": n}, "max_steps": n // 2} for n in (100, 200, 300)},
    "react-unmasked": {"mask_observations": False},
    # counts at most what each cell has after the held-out questions and the cutoff (14 of the 47
    # Reflexion trajectories are longer than 1024 tokens, as in d), so none is upsampled
    **{
        method: {
            "sources": ["finetune/alpaca_format/hotpotqa_multimethod.json"],
            "mix": {f"hotpotqa/{method}": n},
            "max_steps": n // 2,
        }
        for method, n in (("cot", 180), ("reflexion", 30))
    },  # fmt: skip
    "multitask": {
        "sources": ["finetune/alpaca_format/multitask.json"],
        "mix": {"hotpotqa/react": 450, "strategyqa/react": 200, "mmlu/react": 150},
        "max_steps": 400,  # 800 trajectories x 2 epochs / batch 4
    },
}
EI_CONFIG = "configs/repro/smollm2_hotpotqa_expert_iteration.yaml"


def variant_config(run: str) -> Path:
    """c's config with the variant's changes and every output path moved to runs/repro/RUN."""
    changes = dict(VARIANTS[run])
    text = (
        Path("configs/repro/smollm2_hotpotqa_react.yaml").read_text().replace("runs/repro/react", f"runs/repro/{run}")
    )
    config = yaml.safe_load(text)
    if "max_steps" in changes:
        steps = changes.pop("max_steps")
        config["trainer"]["max_steps"], config["trainer"]["val_check_interval"] = steps, max(steps // 2, 1)
    config["data"]["init_args"].update(changes)
    path = OUT / "configs" / f"{run}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# generated by experiments/reproduce.py: configs/repro/smollm2_hotpotqa_react.yaml + {VARIANTS[run]}\n"
                    + yaml.safe_dump(config, sort_keys=False))  # fmt: skip
    return path


def load_steps() -> dict:
    return steps_file.load_steps(OUT / "steps.json")


def run_step(steps: dict, name: str, cmd: list[str], done: Path) -> dict:
    """Run `cmd` unless `done` exists (experiments/steps.py); `steps` gets every recorded step."""
    record = steps_file.run_step(OUT / "steps.json", name, cmd, done)
    steps.update(load_steps())
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
    config = variant_config(base) if base in VARIANTS else f"configs/repro/smollm2_hotpotqa_{base}.yaml"
    train = [*PY, "fireact.train", "fit", "--config", str(config)]
    run_step(steps, f"train-{base}", train, last)
    (ckpt,) = [last] if which == "last" else (OUT / base / "checkpoints").glob("best-*.ckpt")
    export = [*PY, "fireact", "export", "--ckpt", str(ckpt), "--out", str(adapter_dir(run))]
    run_step(steps, f"export-{run}", export, adapter_dir(run) / "adapter_config.json")


def task_of(setting: str) -> tuple[str, str]:
    """The task and split a setting is scored on: "m@mmlu" is m on MMLU dev; plain names, HotpotQA dev."""
    task = setting.partition("@")[2] or "hotpotqa"
    return task, CROSS_TASKS.get(task, "dev")


def evaluate(steps: dict, setting: str, args: argparse.Namespace) -> None:
    _, run, extra = SETTINGS[setting]
    out = OUT / f"eval_{setting}.jsonl"
    task, split = task_of(setting)
    cmd = [*PY, "fireact", "eval", "--task", task, "--split", split, "--n", str(args.n), "--out", str(out)]
    cmd += ["--json", "--threads", str(args.threads), "--batch-size", str(args.batch_size), *extra]
    if task == "bamboogle" and "--few-shot" in extra:  # no Bamboogle trajectories: HotpotQA's, also multi-hop
        from fireact.data.paths import resolve_data_dir

        cmd += ["--few-shot-from", str(resolve_data_dir() / "finetune/gpt_format/hotpotqa.jsonl")]
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
        if not step or "@" in setting:
            continue
        r = step["result"]
        train = steps.get(f"train-{run.split('/')[0]}", {}).get("seconds") if run else None
        rows.append(
            f"| {setting} | {label} | {100 * r['em']:.1f} | {100 * r['f1']:.1f} | "
            f"{r['turns_mean']:.2f} ± {r['turns_std']:.2f} | {100 * r['format_error_rate']:.1f} | "
            f"{r['seconds_per_question']:.2f} | {f'{train / 60:.1f}' if train else '-'} | {paired_with_c(setting)} |"
        )
        names.append(setting)
        ems.append(100 * r["em"])
    table = [
        f"HotpotQA dev, first {n} questions of the paper's selection, SmolLM2-135M-Instruct, snapshot search.",
        "",
        "| setting | agent | EM | F1 | turns (mean ± std) | format errors % | s / question | training min | vs (c): +/-, McNemar p |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    table += multitask_table(steps, n) + method_choice_table() + cost_table(n)
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
    data_scaling(plt, steps)
    print("\n".join(table))


def multitask_table(steps: dict, n: int) -> list[str]:
    """EM (format errors) of the prompted model, c and m on every task, paired with c per task."""
    from fireact.data.paths import resolve_data_dir, snapshot_path
    from fireact.tools.snapshot import SnapshotSearch

    agents = {agent: SETTINGS[agent][0] for agent in ("a", "c", "m")}
    if not any(f"eval-{a}@{t}" in steps for a in agents for t in CROSS_TASKS):
        return []
    names = ["hotpotqa", *CROSS_TASKS]
    lines = [
        "",
        f"Multi-task: first {n} questions of each task (HotpotQA, StrategyQA and MMLU dev, Bamboogle test:",
        "trained on by none). EM % (format errors %), and vs (c) on the same questions: +/-, McNemar p.",
        "",
        f"| agent | {' | '.join(names)} |",
        "|---|" + "---|" * len(names),
    ]
    for agent, label in agents.items():
        cells = []
        for task in names:
            setting = on_task(agent, task)
            r = (steps.get(f"eval-{setting}") or {}).get("result")
            pair = "" if agent == "c" else f"; {paired_with_c(setting)}"
            cells.append(f"{100 * r['em']:.1f} ({100 * r['format_error_rate']:.0f}){pair}" if r else "-")
        lines.append(f"| {agent}: {label} | {' | '.join(cells)} |")
    lines += ["", "Searches the snapshot answers with a recorded Google result (query cached as is; the rest get BM25",
              "over all snippets), % of each agent's searches on each task:", "",
              f"| agent | {' | '.join(names)} |", "|---|" + "---|" * len(names)]  # fmt: skip
    snapshot = SnapshotSearch(snapshot_path(resolve_data_dir()))
    for agent in agents:
        shares = [cached_search_share(OUT / f"eval_{on_task(agent, t)}.jsonl", snapshot) for t in names]
        lines.append(f"| {agent} | {' | '.join('-' if s is None else f'{100 * s:.0f}' for s in shares)} |")
    return lines


def on_task(agent: str, task: str) -> str:
    """The setting of `agent` scored on `task`: plain on HotpotQA, "m@mmlu" elsewhere."""
    return agent if task == "hotpotqa" else f"{agent}@{task}"


def cached_search_share(path: Path, snapshot) -> float | None:
    """The share of an eval file's searches whose query the snapshot holds as is: those read the snippet
    Google returned to FireAct's GPT-4 for that query; the others read BM25's best guess."""
    from fireact.data.trajectory import parse_action, read_trajectories

    if not path.is_file():
        return None
    queries = [a[1] for t in read_trajectories(path) for turn in t.turns if (a := parse_action(turn.action)) and a[0] == "search"]  # fmt: skip
    return sum(map(snapshot.cached, queries)) / len(queries) if queries else None


def method_choice_table() -> list[str]:
    """d's episodes by the method they acted as, and the random-method and oracle references of the
    single-method agents (the paper's Table 4 analysis), from the eval files."""
    from fireact.data.evaluation import method_choice, method_references
    from fireact.data.trajectory import read_trajectories

    files = {name: OUT / f"eval_{name}.jsonl" for name in ("d", "s-cot", "c", "s-reflexion")}
    if not all(f.is_file() for f in files.values()):
        return []
    d = read_trajectories(files["d"])
    singles = {
        m: read_trajectories(files[s]) for m, s in (("cot", "s-cot"), ("react", "c"), ("reflexion", "s-reflexion"))
    }
    refs = method_references(singles)
    lines = ["", "Method choice of (d), by what each episode did (reflection -> reflexion, one finish turn -> cot,",
             "no well-formed action -> no action):",
             "", "| acted as | share % | EM % | turns (mean ± std) |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r.method} | {100 * r.share:.0f} | {100 * r.em:.1f} | {r.turns_mean:.2f} ± {r.turns_std:.2f} |"
              for r in method_choice(d)]  # fmt: skip
    return lines + [
        "",
        f"References from the single-method agents on the same {refs['questions']} questions: random method "
        f"{100 * refs['random_method_em']:.1f} EM, per-question oracle {100 * refs['oracle_em']:.1f} EM.",
    ]


def cost_table(n: int) -> list[str]:
    """Prompt tokens, generated tokens and episode seconds per question: few-shot prompting vs the
    fine-tuned agents (the paper's Table 3 efficiency axes)."""
    from fireact.data.evaluation import cost_row
    from fireact.data.trajectory import read_trajectories

    rows = [(s, OUT / f"eval_{s}.jsonl") for s in ("a", "b", "c", "d", "m") if (OUT / f"eval_{s}.jsonl").is_file()]
    if len(rows) < 2:
        return []
    lines = ["", f"Cost per question (HotpotQA dev, {n} questions):", "",
             "| setting | prompt tokens | generated tokens | episode s |", "|---|---|---|---|"]  # fmt: skip
    for setting, path in rows:
        c = cost_row(read_trajectories(path))
        lines.append(f"| {setting} | {c['prompt_tokens']:.0f} | {c['generated_tokens']:.0f} | {c['seconds']:.2f} |")
    return lines


def paired_with_c(setting: str) -> str:
    """Questions only this setting got right / only (c) got right on the same task, and the exact
    McNemar p-value."""
    from fireact.data.evaluation import mcnemar
    from fireact.data.trajectory import read_trajectories

    task, _ = task_of(setting)
    c_setting = "c" if task == "hotpotqa" else f"c@{task}"
    mine, c = OUT / f"eval_{setting}.jsonl", OUT / f"eval_{c_setting}.jsonl"
    if setting == c_setting or not (mine.is_file() and c.is_file()):
        return "-"
    t = mcnemar(read_trajectories(c), read_trajectories(mine))
    return f"+{t['only_second']} / -{t['only_first']}, p={t['p_value']:.2f}"


def data_scaling(plt, steps: dict) -> None:
    """data_scaling.png: EM and format errors against the number of fine-tuning trajectories."""
    points = [(n, steps.get(f"eval-{'c' if n == 500 else f'g-n{n}'}")) for n in (100, 200, 300, 500)]
    points = [(n, s["result"]) for n, s in points if s]
    if len(points) < 2:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([n for n, _ in points], [100 * r["em"] for _, r in points], "o-", color="#d62728", label="EM")
    ax.plot([n for n, _ in points], [100 * r["format_error_rate"] for _, r in points], "s--", color="#1f77b4",
            label="format errors")  # fmt: skip
    ax.set_xlabel("HotpotQA ReAct trajectories (2 epochs each)")
    ax.set_ylabel("% of the dev questions")
    ax.set_title("SmolLM2-135M LoRA: data scaling")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "data_scaling.png", dpi=120)
    plt.close(fig)


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
