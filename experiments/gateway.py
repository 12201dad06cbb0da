"""Fine-tune the agent you already have, measured: an OpenAI Agents SDK program over company-db
(experiments/agents/company_db_agent.py: the mcp-server-sqlite MCP server and a divide tool) is recorded
through the gateway with a scripted teacher behind --upstream (standing in for GPT-4), SmolLM2-135M is
LoRA-tuned on the rewarded recordings, and the same program runs against the model before and after.

Steps, each a public command in a subprocess, recorded (command, wall and CPU time) in
runs/gateway/steps.json; a finished step (its output exists) is skipped, so a rerun resumes:
  teacher      the program on the 171 train questions, the teacher upstream (fireact rollouts --upstream)
  before       the program on the 77 test questions against SmolLM2-135M-Instruct (fireact rollouts --lm)
  sft-train / sft-export   LoRA SFT on the recording (configs/gateway/company_db_agent_sft.yaml), export
  after        the program on the same 77 test questions against the fine-tuned model
  overhead     bench/gateway_overhead.py: requests/s and tokens/s through /episodes/ID/v1 against /v1

    python experiments/gateway.py [--only teacher ...]
    python experiments/gateway.py --report     # the tables of docs/results/gateway.md
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from steps import cli, print_costs

from fireact.data.evaluation import bootstrap_gain, mcnemar
from fireact.data.trajectory import read_trajectories

OUT = Path("runs/gateway")
FIREACT = [sys.executable, "-m", "fireact"]
AGENT = "experiments/agents/company_db_agent.py"
TEACHER_PORT = 8790
TEST = ["--env", "company-db", "--env-args", '{"split": "test"}', "--concurrency", "16"]


def rollouts(name: str, *args: str) -> tuple[list[str], Path]:
    out = OUT / f"{name}.jsonl"
    return [*FIREACT, "rollouts", "--agent", AGENT, "--record", str(OUT / name), "--out", str(out), *args], out


def steps() -> dict[str, tuple[list[str], Path]]:
    """name -> (command, the file that exists once it is done)."""
    ckpt, adapter = OUT / "sft" / "checkpoints" / "last.ckpt", OUT / "sft" / "adapter"
    return {
        "teacher": rollouts(
            "teacher", "--env", "company-db", "--concurrency", "16", "--upstream", f"http://127.0.0.1:{TEACHER_PORT}/v1"
        ),  # fmt: skip
        "before": rollouts("before", *TEST, "--lm", "hf:smollm2-135m"),
        "sft-train": (
            [sys.executable, "-m", "fireact.train", "fit", "--config", "configs/gateway/company_db_agent_sft.yaml"],
            ckpt,
        ),  # fmt: skip
        "sft-export": (
            [*FIREACT, "export", "--ckpt", str(ckpt), "--out", str(adapter)],
            adapter / "adapter_config.json",
        ),
        "after": rollouts("after", *TEST, "--lm", "hf:smollm2-135m", "--adapter", str(adapter)),
        "overhead": (
            [sys.executable, "bench/gateway_overhead.py", "--out", str(OUT / "overhead.json")],
            OUT / "overhead.json",
        ),  # fmt: skip
    }


def teacher_server() -> subprocess.Popen:
    """The scripted teacher on a loopback port (uvicorn), ready when its docs page answers."""
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "company_db_teacher:app", "--port", str(TEACHER_PORT),
                             "--log-level", "warning"], cwd="experiments/agents")  # fmt: skip
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{TEACHER_PORT}/docs", timeout=1)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the scripted teacher did not start")


def report() -> None:
    runs = {
        k: read_trajectories(OUT / f"{k}.jsonl")
        for k in ("teacher", "before", "after")
        if (OUT / f"{k}.jsonl").is_file()
    }
    print("| run | episodes | success | calls / episode | trajectories |")
    print("|---|---|---|---|---|")
    for name, trajs in runs.items():
        episodes = {t.meta["episode"]: t for t in trajs}
        success = sum((t.reward or 0) >= 1 for t in episodes.values()) / max(len(episodes), 1)
        calls = sum(t.num_actions for t in trajs) / max(len(episodes), 1)
        print(f"| {name} | {len(episodes)} | {100 * success:.1f}% | {calls:.2f} | {len(trajs)} |")
    if "before" in runs and "after" in runs:
        m, g = mcnemar(runs["before"], runs["after"]), bootstrap_gain(runs["before"], runs["after"])
        print(f"after vs before: +{m['only_second']} / -{m['only_first']} on {m['questions']} questions, McNemar p = "
              f"{m['p_value']:.3g}; gain {100 * g['gain']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]")  # fmt: skip
    if (OUT / "overhead.json").is_file():
        print((OUT / "overhead.json").read_text())
    print_costs(OUT / "steps.json")


def prepare(name: str) -> subprocess.Popen | None:
    """A killed run's partial recording is not resumed but redone; the teacher step gets its server."""
    if name in ("teacher", "before", "after"):
        shutil.rmtree(OUT / name, ignore_errors=True)
    return teacher_server() if name == "teacher" else None


if __name__ == "__main__":
    cli(__doc__, steps(), report, OUT / "steps.json", prepare)
