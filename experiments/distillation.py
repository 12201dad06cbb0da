"""A teacher inside on-policy learning, measured on CPU: in company-db, from a student trained on a small
slice of the teacher's trajectories, four arms for the same wall time each, scored on the held-out test
questions: (a) SFT on more of the teacher's trajectories, (b) GRPO on the reward, (c) on-policy
distillation (the teacher scores the student's samples), (d) DGPO's selective form (the reward, and the
teacher's term on the episodes it marks wrong).

The teacher is the environments experiment's company-db SFT agent (all 179 teacher trajectories; 100%
on test), made first by `python experiments/environments.py --only cdb-teacher cdb-sft-train
cdb-sft-export cdb-sft-eval`. Steps, each a public command in a subprocess, recorded (command, wall
and CPU time) in runs/distill/steps.json; a finished step (its output exists) is skipped, so a rerun
resumes:
  student-train / student-export / student-eval    SFT on the first SLICE teacher trajectories
  {sft,grpo,opd,dgpo}-train / -export / -eval      the arms, BUDGET each (trainer.max_time)

    python experiments/distillation.py [--only student-train ...]
    python experiments/distillation.py --report     # the tables of docs/results/distillation.md
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from steps import cli, print_costs

from fireact.data.evaluation import bootstrap_gain, mcnemar
from fireact.data.trajectory import read_trajectories

OUT, ENVS = Path("runs/distill"), Path("runs/envs")
FIREACT, TRAIN = [sys.executable, "-m", "fireact"], [sys.executable, "-m", "fireact.train", "fit"]
TEACHER_DATA, TEACHER = ENVS / "company_db_teacher.jsonl", ENVS / "company_db" / "adapter"
SLICE = 8  # the first teacher trajectories (seeded order): 4 salaries, 3 averages, 1 head count, no budget question
BUDGET = "00:00:06:00"  # wall time of each arm's training (dd:hh:mm:ss)
ON_POLICY = "configs/distill/company_db_on_policy.yaml"
ARMS = {  # arm -> the flags that make it (on top of its config)
    "sft": ["--config", "configs/distill/company_db_student.yaml", "--data.init_args.sources",
            f"[{OUT / 'teacher_rest.jsonl'}]", "--model.init_adapter", str(OUT / "student" / "adapter"),
            "--trainer.max_steps", "171", "--model.warmup", "0"],
    "grpo": ["--config", ON_POLICY],
    "opd": ["--config", ON_POLICY, "--model.init_args.teacher", str(TEACHER), "--model.init_args.reward_coef", "0",
            "--model.init_args.group_size", "1", "--data.init_args.questions_per_step", "8"],
    "dgpo": ["--config", ON_POLICY, "--model.init_args.teacher", str(TEACHER), "--model.init_args.distill_below", "1.0"],
}  # fmt: skip
TEST = ["--env", "company-db", "--env-args", '{"split": "test"}', "--max-turns", "8", "--batch-size", "40", "--json"]


def write_slices() -> None:
    """The student's slice (the first SLICE teacher trajectories) and the rest, for arm (a)."""
    if (OUT / "teacher_rest.jsonl").is_file():
        return
    lines = [x for x in TEACHER_DATA.read_text().splitlines() if x.strip()]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "student_slice.jsonl").write_text("\n".join(lines[:SLICE]) + "\n")
    (OUT / "teacher_rest.jsonl").write_text("\n".join(lines[SLICE:]) + "\n")


def trained(name: str, cmd: list[str], root: Path) -> dict[str, tuple[list[str], Path]]:
    """An agent's train, export and eval steps (its run dir `root`)."""
    ckpt, adapter = root / "checkpoints" / "last.ckpt", root / "adapter"
    return {
        f"{name}-train": (cmd, ckpt),
        f"{name}-export": ([*FIREACT, "export", "--ckpt", str(ckpt), "--out", str(adapter)], adapter / "adapter_config.json"),
        f"{name}-eval": ([*FIREACT, "eval", *TEST, "--adapter", str(adapter), "--out", str(OUT / f"eval_{name}.jsonl")],
                         OUT / f"eval_{name}.jsonl"),
    }  # fmt: skip


def steps() -> dict[str, tuple[list[str], Path]]:
    """name -> (command, the file that exists once it is done)."""
    out: dict[str, tuple[list[str], Path]] = {}
    out |= trained("student", [*TRAIN, "--config", "configs/distill/company_db_student.yaml"], OUT / "student")
    for arm, flags in ARMS.items():
        root = OUT / arm
        run_dir = ["--trainer.default_root_dir", str(root), "--trainer.max_time", BUDGET,
                   "--trainer.logger.init_args.save_dir", str(root),
                   "--trainer.callbacks.init_args.dirpath", str(root / "checkpoints")]  # fmt: skip
        out |= trained(arm, [*TRAIN, *flags, *run_dir], root)
    return out


def curve(arm: str) -> list[dict[str, float]]:
    """The arm's per-step training metrics (CSVLogger)."""
    files = sorted((OUT / arm / "metrics").glob("*/metrics.csv"))
    if not files:
        return []
    rows = csv.DictReader(open(files[-1]))
    return [{k: float(v) for k, v in r.items() if v} for r in rows if r.get("train/loss")]


def _rate(trajs: list, key: str) -> float:
    return 100 * sum(key == "format" and not t.finished or key == "reward" and (t.reward or 0) >= 1
                     for t in trajs) / max(len(trajs), 1)  # fmt: skip


def report() -> None:
    runs = {"student": OUT / "eval_student.jsonl", **{a: OUT / f"eval_{a}.jsonl" for a in ARMS},
            "teacher": ENVS / "cdb_sft_eval.jsonl"}  # fmt: skip
    runs = {k: read_trajectories(p) for k, p in runs.items() if p.is_file()}
    if "student" not in runs:
        return print("no student eval yet")
    start, top = _rate(runs["student"], "reward"), _rate(runs.get("teacher", []), "reward") if "teacher" in runs else None
    print("| agent | steps | success | format errors | vs student (McNemar p) | gain [95% CI] | gap closed |")
    print("|---|---|---|---|---|---|---|")
    for name, trajs in runs.items():
        m, g = mcnemar(runs["student"], trajs), bootstrap_gain(runs["student"], trajs)
        closed = f"{100 * (_rate(trajs, 'reward') - start) / (top - start):.0f}%" if top and top > start else "-"
        steps_done = len(curve(name)) if name in ARMS else "-"
        print(f"| {name} | {steps_done} | {_rate(trajs, 'reward'):.1f}% | {_rate(trajs, 'format'):.1f}% | "
              f"+{m['only_second']} / -{m['only_first']} (p = {m['p_value']:.3g}) | "
              f"{100 * g['gain']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}] | {closed} |")  # fmt: skip
    for arm in ARMS:  # the training curves (every k-th step of a long one)
        rows = curve(arm)
        rows = rows[:: max(len(rows) // 12, 1)]
        keys = [k for k in ("train/reward_mean", "train/teacher_kl", "train/teacher_share", "train/loss") if rows and k in rows[0]]
        print(f"{arm} at steps {[int(r['step']) for r in rows]}: "
              + json.dumps({k.split('/')[1]: [round(r.get(k, float('nan')), 3) for r in rows] for k in keys}))  # fmt: skip
    print_costs(OUT / "steps.json")


if __name__ == "__main__":
    if not (TEACHER / "adapter_config.json").is_file() and "--report" not in sys.argv:
        sys.exit(f"no teacher at {TEACHER}: run python experiments/environments.py --only cdb-teacher cdb-sft-train "
                 "cdb-sft-export cdb-sft-eval first")  # fmt: skip
    write_slices()
    cli(__doc__, steps(), report, OUT / "steps.json")
