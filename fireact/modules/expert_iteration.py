"""Expert iteration (rejection-sampling fine-tuning): the agent samples G episodes per training
question, keeps the rewarded ones (reward 1, `fireact.data.rewards`; one per distinct action sequence), is fine-tuned on them
(optionally mixed with the teacher's trajectories), and repeats for K rounds.

Each round is a directory under `out/` with what it sampled and kept, the training run, the exported
adapter and the validation rollouts; `out/rounds.json` records every round (questions tried,
success rate, kept, validation EM, wall times) and a re-run skips finished rounds (resumable).
Sampling, the long part, is resumable too: each episode is appended durably as it ends, and a run
killed mid-round keeps every question whose G samples all finished and samples only the rest.
Training reuses `python -m fireact.train fit` on the user's SFT config, so a round trains exactly
as the first fine-tune did, from the previous round's adapter (`model.init_adapter`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fireact.data.evaluation import by_question, gold_turn
from fireact.data.paths import read_text, resolve_data_dir
from fireact.data.prompt_style import PromptStyle
from fireact.data.rewards import rewarded
from fireact.data.tasks import Example
from fireact.data.trajectory import (
    Trajectory,
    TrajectoryAppender,
    Turn,
    question_key,
    read_trajectories,
    write_trajectories,
)
from fireact.errors import FireactError
from fireact.gateway.driver import load_agent, run_program
from fireact.lm.hf import HFLM
from fireact.lm.models import load_tokenizer
from fireact.lm.token_servers import TokenServersLM
from fireact.modules.export import export
from fireact.modules.questions import evaluated_questions
from fireact.rollout.config import RolloutConfig
from fireact.rollout.gold_path import check_gold_path_pool, quoted_sentence, supporting_titles, unsolved_gold_paths
from fireact.rollout.runners import run_rollouts
from fireact.serve.server import served_model

ROUNDS_FILE = "rounds.json"


def keep_successful(trajectories: list[Trajectory], dedup: bool = True) -> list[Trajectory]:
    """The rewarded episodes; with `dedup`, one per (question, action sequence)."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    kept = []
    for t in trajectories:
        if not rewarded(t) or not t.finished:
            continue
        key = (question_key(t.question), tuple(turn.action for turn in t.turns))
        if dedup and key in seen:
            continue
        seen.add(key)
        kept.append(t)
    return kept


def hindsight_finish(samples: list[Trajectory]) -> Trajectory | None:
    """A question none of whose samples was rewarded, turned into a demonstration where its gold answer
    showed up (STaR's rationalization, with the gold as the hint): the sample that saw the gold
    soonest, cut after that observation, then a finish on the gold whose thought quotes the sentence
    that holds it. None when no sample saw the (non yes/no) gold. Marked meta.hindsight."""
    if any(rewarded(t) for t in samples):
        return None
    seen = [(i, t) for t in samples if (i := gold_turn(t)) is not None]
    if not seen:
        return None
    i, t = min(seen, key=lambda pair: pair[0])
    gold = t.answer or ""
    sentence = quoted_sentence(t.turns[i].observation or "", gold)
    finish = Turn(f"{sentence} So the answer is {gold}.", f"finish[{gold}]", None)
    # a written demonstration, not sampled tokens: it trains on its rendered text (token_turns dropped)
    return replace(t, turns=[*t.turns[: i + 1], finish], prediction=gold, em=1.0, f1=1.0, end_reason="finish",
                   meta={**t.meta, "hindsight": True}, token_turns=None)  # fmt: skip


@dataclass
class ExpertIteration:
    """K rounds of sample -> keep rewarded -> fine-tune, from `init_adapter` (an exported SFT agent)."""

    train_config: str  # the SFT config (python -m fireact.train fit --config ...) each round trains with
    init_adapter: str
    out: str
    rounds: int = 2
    pool: RolloutConfig = field(default_factory=lambda: RolloutConfig(split="train", samples=4, temperature=1.0))
    # a YAML mapping for pool or validation sets only the keys it names: the others keep these defaults
    # (offset 100 included, so that the paper's 100 scored dev questions are never validated on)
    validation: RolloutConfig = field(default_factory=lambda: RolloutConfig(n=20, offset=100))
    teacher_sources: list[str] = field(default_factory=list)  # mixed in by the DataModule, as given
    dedup: bool = True
    hindsight: bool = False  # also train on hindsight_finish of the questions no sample solved
    # also train on a gold-path demonstration (fireact.rollout.gold_path) of each question no sample
    # solved: a scripted teacher searching its supporting titles with the pool's tool (wiki splits)
    gold_path: bool = False
    data_dir: str | None = None
    train_overrides: list[str] = field(default_factory=list)  # extra `--key value` for every round
    checkpoint_every: int = 20  # training steps between a round's mid-run checkpoints (a kill loses fewer)
    # sample on OpenAI-compatible servers (vLLM, fireact serve) instead of in this process: each round's
    # adapter folder is loaded on them by path (`/v1/load_lora_adapter`), so they must read `out` and
    # `init_adapter` at the same paths (fireact serve: both under its --allow-adapter-loading folder)
    rollout_servers: list[str] = field(default_factory=list)
    server_model: str = ""  # the base model's name on the servers (checked against their /v1/models)
    # an agent program (`async def run(example, base_url) -> reward`, fireact.gateway.driver) plays the
    # pool and validation episodes instead of fireact's loop, through a recording gateway serving the
    # round's adapter in this process; its rewarded recorded episodes are what the round trains on
    agent: str = ""

    def __post_init__(self) -> None:
        for name in ("rounds", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FireactError(f"{name} must be an integer >= 1, got {value!r}")
        if self.gold_path:
            check_gold_path_pool(self.pool.tasks, self.pool.split, "gold_path")
        self._pushed: str | None = None  # the adapter the rollout servers hold (unloaded at the next push)
        self._agent = load_agent(self.agent) if self.agent else None  # imported once; a bad file fails now

    def run(self) -> list[dict[str, Any]]:
        if not Path(self.train_config).is_file():  # checked now, not after the first round's sampling
            raise FireactError(f"train_config {self.train_config}: no such file")
        out = Path(self.out)
        done = self.load_rounds()
        out.mkdir(parents=True, exist_ok=True)
        adapter = done[-1]["adapter"] if done else self.init_adapter
        root = resolve_data_dir(self.data_dir, must_exist=self.pool.env is None or self.validation.env is None)
        self.check_disjoint(root)
        for k in range(len(done) + 1, self.rounds + 1):
            record = self.run_round(k, adapter, root)
            done.append(record)
            (out / ROUNDS_FILE).write_text(json.dumps(done, indent=1) + "\n")
            adapter = record["adapter"]
        return done

    def load_rounds(self) -> list[dict[str, Any]]:
        path = Path(self.out) / ROUNDS_FILE
        if not path.exists():
            return []
        try:
            rounds = json.loads(read_text(path))
        except (json.JSONDecodeError, RecursionError) as e:
            raise FireactError(f"{path}: not valid JSON ({type(e).__name__}); fix or remove it to start over") from None
        if not isinstance(rounds, list) or not all(isinstance(r, dict) and "adapter" in r for r in rounds):
            raise FireactError(f"{path}: expected a list of finished rounds, each with its adapter")
        return rounds

    def check_disjoint(self, root: Path) -> None:

        evaluated = evaluated_questions([self.validation], root)
        for e in self.pool.all_examples(root):
            if question_key(e.question) in evaluated:
                raise FireactError(
                    f"pool question {e.task} {e.id!r} ({e.question[:80]!r}) is also a validation question: "
                    "choose disjoint pool and validation selections"
                )

    def play(
        self, adapter: str, cfg: RolloutConfig, root: Path, source: str, skip: set[tuple[str, str]] = frozenset(),
        on_done: Callable[[Trajectory], None] | None = None,
    ) -> list[Trajectory]:  # fmt: skip
        """`cfg`'s episodes with `adapter`, but for the (task, id) questions in `skip`."""
        examples = [e for e in cfg.all_examples(root) if (e.task, e.id) not in skip]
        if self._agent is not None:
            return self.play_program(adapter, cfg, examples, on_done)
        lm = self.server_lm(adapter) if self.rollout_servers else HFLM(adapter, name=f"hf:{adapter}")
        tool = cfg.make_tool(root)
        return run_rollouts(lm, tool, examples, cfg, progress="rich", source=source, on_done=on_done)

    def play_program(self, adapter: str, cfg: RolloutConfig, examples: list[Example],
                     on_done: Callable[[Trajectory], None] | None) -> list[Trajectory]:  # fmt: skip
        """The agent program's `cfg.samples` runs per example against `adapter`, recorded token-exact."""
        lm = HFLM(adapter, name=f"hf:{adapter}")
        served = served_model(lm, "policy", PromptStyle.load(Path(adapter)), slots=cfg.batch_size)
        trajs, _ = run_program(served, self._agent, examples, cfg.samples, Path(self.out) / "recordings",
                               cfg.batch_size)  # fmt: skip
        for t in trajs:
            (on_done or (lambda _: None))(t)
        return trajs

    def server_lm(self, adapter: str) -> TokenServersLM:
        """The rollout servers, with `adapter` loaded on them under a name of its own."""
        path = Path(adapter).resolve()
        lm = TokenServersLM(self.rollout_servers, self.server_model, load_tokenizer(str(path)), PromptStyle.load(path))
        if self.server_model:
            lm.check()
        name = "fireact-" + "-".join(path.parts[-2:]).replace(".", "_")
        lm.push_adapter(name, str(path), self._pushed if self._pushed != name else None)
        self._pushed = name
        return lm

    def sample_pool(self, adapter: str, root: Path, log: Path, source: str) -> list[Trajectory]:
        """The pool's G episodes per question, each appended to `log` as it ends; after a kill, the
        questions whose G samples all finished are kept and only the others are sampled (again)."""
        TrajectoryAppender(log).close()  # cuts a line a kill tore in half
        earlier = read_trajectories(log)
        whole = [t for group in by_question(earlier).values() if len(group) >= self.pool.samples for t in group]
        write_trajectories(log, whole)  # drops the samples of questions the kill cut short
        if whole:
            print(f"resuming {log}: {len(by_question(whole))} questions already sampled", flush=True)
        with TrajectoryAppender(log) as out:
            fresh = self.play(adapter, self.pool, root, source, set(by_question(whole)), out.append)
        return whole + fresh

    def run_round(self, k: int, adapter: str, root: Path) -> dict[str, Any]:
        rdir = Path(self.out) / f"round{k}"
        rdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        sampled = self.sample_pool(adapter, root, rdir / "sampled.jsonl", f"expert-iteration round {k}")
        sample_seconds = time.perf_counter() - started
        started = time.perf_counter()  # scoring: EM is computed as each episode ends; this is the filter
        kept = keep_successful(sampled, self.dedup)
        hindsight = []
        if self.hindsight:
            hindsight = [h for group in by_question(sampled).values() if (h := hindsight_finish(group))]
            kept += hindsight
        gold = self.gold_paths(sampled, root) if self.gold_path else []
        kept += gold
        if not kept:
            raise FireactError(f"round {k}: none of {len(sampled)} sampled episodes was rewarded: nothing to train on")
        write_trajectories(rdir / "kept.jsonl", kept)
        score_seconds = time.perf_counter() - started

        started = time.perf_counter()
        new_adapter = self.train(rdir, adapter, [str(rdir / "kept.jsonl"), *self.teacher_sources])
        train_seconds = time.perf_counter() - started

        started = time.perf_counter()
        val = self.play(
            new_adapter, replace(self.validation, temperature=0.0, samples=1), root, f"round {k} validation"
        )
        write_trajectories(rdir / "validation.jsonl", val)
        record = {
            "round": k,
            "start_adapter": adapter,
            "adapter": new_adapter,
            "questions": len({(t.task, t.id) for t in sampled}),
            "episodes": len(sampled),
            "success_rate": sum(rewarded(t) for t in sampled) / len(sampled),
            "kept": len(kept),
            "hindsight": len(hindsight),
            "gold_path": len(gold),
            "val_em": sum(t.em for t in val) / len(val),
            "val_reward": sum(t.score for t in val) / len(val),
            "val_format_error_rate": sum(not t.finished for t in val) / len(val),
            "seconds": {
                "sample": round(sample_seconds, 1),
                "score": round(score_seconds, 1),
                "train": round(train_seconds, 1),
                "validate": round(time.perf_counter() - started, 1),
            },
        }
        print(json.dumps(record), flush=True)
        return record

    def gold_paths(self, sampled: list[Trajectory], root: Path) -> list[Trajectory]:
        """Gold-path demonstrations of the sampled questions none of whose samples was rewarded."""
        return unsolved_gold_paths(sampled, supporting_titles(root, self.pool.split), self.pool.make_tool(root))

    def train(self, rdir: Path, adapter: str, sources: list[str]) -> str:
        """One `python -m fireact.train fit` run from `adapter` on `sources`, exported to rdir/adapter.
        A run killed part-way resumes from its newest checkpoint: the epoch-end `last.ckpt` or the one
        saved every `checkpoint_every` steps, whichever was written later."""

        run_dir = rdir / "train"
        ckpts = run_dir / "checkpoints"
        saved = [p for p in (ckpts / "last.ckpt", ckpts / "steps" / "step.ckpt") if p.is_file()]
        resume = ["--ckpt_path", str(max(saved, key=lambda p: p.stat().st_mtime))] if saved else []
        cmd = [
            sys.executable, "-m", "fireact.train", "fit", "--config", self.train_config, *self.train_overrides,
            f"--model.init_adapter={adapter}", f"--data.init_args.sources={json.dumps(sources)}",
            f"--trainer.default_root_dir={run_dir}", "--trainer.logger=false",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            f"--trainer.callbacks.dirpath={ckpts}", "--trainer.callbacks.save_last=true",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            f"--trainer.callbacks.dirpath={ckpts / 'steps'}", "--trainer.callbacks.filename=step",
            f"--trainer.callbacks.every_n_train_steps={self.checkpoint_every}",
            "--trainer.callbacks.enable_version_counter=false",
            *resume,
        ]  # fmt: skip
        log = rdir / "train.log"
        with log.open("a") as f:  # a resumed run's log follows the killed one's
            f.write(" ".join(cmd) + "\n")
            f.flush()
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=os.environ.copy())
        if r.returncode != 0:
            raise FireactError(f"round training failed (exit {r.returncode}): see {log}")
        export(ckpts / "last.ckpt", rdir / "adapter")
        return str(rdir / "adapter")
