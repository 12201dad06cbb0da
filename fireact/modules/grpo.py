"""GRPO: the fine-tuned agent improves from its own live rollouts, rewarded by its environment
(`fireact.data.rewards`: the environment's reward, the task's exact match where it has none).

Each training step plays the step's questions G times each with the current weights (the rollout
engine, sampling, LoRA live, tokens and log-probs recorded), scores every episode, turns rewards into
group-relative advantages (reward minus its group's mean, over the group's std), and applies the
clipped policy-gradient loss on the sampled tokens only: prompts and observations carry no loss, and
the sampled tokens are used as sampled, never re-tokenized (`fireact.data.token_log`). An optional
KL term keeps the policy near the starting one: the adapter-disabled base, or the frozen copy of the
adapter it started from (`init_adapter`), so no second model is held in memory. An optional teacher
term (`gold_path_coef`, DGPO's fallback where reward is rare) adds the SFT loss of a gold-path
demonstration (`fireact.rollout.gold_path`) for each question none of whose samples was rewarded.
With a `teacher` (`fireact.lm.teacher`: an adapter, an HF model or a server), the teacher scores the
sampled tokens and its per-token reverse KL joins the advantage (`teacher_policy_loss`): on every
episode (on-policy distillation; `reward_coef: 0` for distillation alone) or only on the episodes
whose reward is below `distill_below` (DGPO's selective form).

Under DDP each rank plays its own share of the questions (a question's group never spans ranks).
DeepSpeed is refused with a message: ZeRO-3 generation gathers weights layer by layer in lockstep across
ranks, which per-rank sampling does not do, and the loss here needs manual optimization.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import PeftConfig

from fireact.data.batching import collate, model_inputs, pack_in_order
from fireact.data.encoding import encode
from fireact.data.paths import resolve_data_dir
from fireact.data.prompt_style import PromptStyle
from fireact.data.rewards import REWARDS, episode_reward
from fireact.data.tasks import Example
from fireact.data.token_log import training_rows
from fireact.data.token_row import IGNORE_INDEX, TokenRow
from fireact.data.trajectory import Trajectory
from fireact.errors import FireactError
from fireact.gateway.driver import load_agent, run_program
from fireact.lm.hf import HFLM
from fireact.lm.teacher import HFTeacher, ServerTeacher, teacher_kind
from fireact.lm.token_servers import TokenServersLM
from fireact.modules.grpo_loss import (
    clipped_policy_loss,
    episode_metrics,
    equal_reward_groups,
    group_advantages,
    teacher_policy_loss,
    token_budget_chunks,
)
from fireact.modules.lm_module import FireActLM
from fireact.modules.ranks import sum_grads_over_ranks, sum_over_ranks
from fireact.rollout.config import EpisodeConfig
from fireact.rollout.gold_path import check_gold_path_pool, supporting_titles, unsolved_gold_paths
from fireact.rollout.runners import run_rollouts
from fireact.rollout.sampling import sampling_logprobs
from fireact.serve.server import served_model

REFERENCE = "reference"  # the frozen starting adapter, when training starts from one
TEACHER = "teacher"  # a teacher adapter on the student's own base
FROZEN = (REFERENCE, TEACHER)  # adapters loaded beside the trained one, never trained or saved


def group_of(x: Example | Trajectory) -> str:
    """The GRPO group of a question, or of an episode of it."""
    return f"{x.task}/{x.id}"


def advantage_rows(
    trajs: list[Trajectory], groups: list[str], advantages: list[float], under: list[bool] | None = None
) -> tuple[list[TokenRow], list[float], list[bool]]:
    """The training rows of the episodes with a non-zero advantage or under the teacher's term (any
    other gives no gradient: its forward pass is skipped), with each row's advantage and whether it
    is under the teacher."""
    rows, row_adv, row_under = [], [], []
    for t, g, a, u in zip(trajs, groups, advantages, under or [False] * len(trajs)):
        if a != 0.0 or u:
            for r in training_rows(t.token_turns, g):
                rows.append(r)
                row_adv.append(a)
                row_under.append(u)
    return rows, row_adv, row_under


def _per_token(rows: list[TokenRow], chunk: list[int], values: list) -> torch.Tensor:
    """Each row's value repeated over its trained tokens, for the rows of `chunk`, in order."""
    return torch.cat([torch.full((rows[i].num_trained,), values[i]) for i in chunk])


def _check_teacher_settings(
    teacher: str | None, reward_coef: float, distill_coef: float, distill_below: float | None, kl_coef: float,
    group_size: int,
) -> None:  # fmt: skip
    """The reward and teacher terms' settings, checked before any model loads."""
    if reward_coef < 0 or distill_coef < 0:
        raise FireactError(f"model.reward_coef and model.distill_coef must be >= 0, got {reward_coef}, {distill_coef}")
    if not teacher and (reward_coef == 0 or distill_below is not None):
        raise FireactError("model.reward_coef: 0 and model.distill_below need a model.teacher")
    if teacher and kl_coef > 0:
        raise FireactError("model.kl_coef and model.teacher: the teacher's term is already a KL; use one of them")
    if group_size < 2 and reward_coef > 0:
        raise FireactError("model.group_size must be at least 2: advantages are relative to the group")


class GRPOLM(FireActLM):
    """FireActLM trained by GRPO on live rollouts (see the module docstring).

    Args:
        rollouts: how episodes are played and sampled (method, turns, tool, temperature, top_p, seed); the
            questions come from the DataModule, and with no tool named, the tool is the one for them.
        group_size: G, the samples per question (each its own engine slot, sharing the prompt's KV).
        clip_eps: PPO clip range of the probability ratio.
        kl_coef: weight of the k3 KL estimate to the starting policy (0 skips the reference pass).
        reward: "env" (the environment's reward; the exact match where it has none), "em" (the task's
            exact match, the paper's metric) or "f1" (fireact.data.rewards).
        format_penalty: subtracted from the reward of an episode that never finished well-formed.
        seen_bonus: added to the reward of an episode where the gold answer showed up in an observation
            (shaping for retrieval; the task's EM is still what validation scores).
        refill: DAPO's dynamic sampling: up to this many more sampling rounds a step, each replacing the
            groups whose rewards all came out equal (no gradient) by as many questions drawn from the
            DataModule's pool (seeded by step and rank, so a replayed step refills alike); the replaced
            groups' episodes are dropped. 0: they are only skipped. The logged episode metrics are the
            step's own questions' (comparable across runs); `train/refilled` counts the questions added.
        gold_path_coef: weight of the teacher term: the SFT loss (token mean) of a gold-path demonstration
            of each question none of whose G samples was exact-match right (DGPO's fallback where reward
            is rare; HotpotQA pools on a wiki split, whose questions carry their supporting titles).
            0: no teacher. Logged: `train/gold_paths` (demonstrations a step), `train/gold_path_nll`.
        ppo_epochs: optimizer steps on each batch of rollouts (1 = strictly on-policy).
        micro_batch_tokens: tokens per forward/backward when computing the loss (episodes sorted by
            length and packed into sequences as long as the longest, `token_budget_chunks`; a longer
            episode goes alone). Activation memory grows with it:
            about 1.4 MB per token for SmolLM2-135M in fp32, so 4096 is ~6 GB; a row-count cap would
            let 8 full 11-turn episodes (~24k tokens) take 30+ GB.
        rollout_servers: base URLs of OpenAI-compatible servers (vLLM, `fireact serve`) that sample the
            episodes instead of this process: each step the LoRA weights are saved under `push_dir` and
            loaded on every server (`/v1/load_lora_adapter`), requests are spread over the servers, and
            the servers' sampled ids are trained with their log-probs corrected by truncated importance
            sampling (`tis_cap`). LoRA only (full weights are not synced).
        server_model: the model name the servers serve (checked against their `/v1/models` at start).
        push_dir: where the step adapters are written; the servers must read it at the same path (vLLM:
            a shared filesystem; fireact serve: under its --allow-adapter-loading folder).
            Default: `<trainer.default_root_dir>/rollout_adapters`.
        tis_cap: the truncated importance weight's cap, min(pi_trainer / pi_server, tis_cap).
        teacher: on-policy distillation's teacher (fireact.lm.teacher): a LoRA adapter folder on the
            student's base, an HF model with the student's tokenizer, or an OpenAI-compatible server URL
            that returns `prompt_logprobs` (vLLM, `fireact serve`). It scores every sampled token; its
            log-prob minus the student's joins that token's advantage. None: no teacher.
        teacher_model: the model name to ask a teacher server for (default: the first it lists).
        distill_coef: the weight of the teacher's term in the advantage (per token, in nats).
        distill_below: DGPO's selective form: the teacher's term only on episodes whose reward is below
            this; None: on every episode (on-policy distillation). Logged: `train/teacher_share`, the
            share of episodes under the term, and `train/teacher_kl`, the student-teacher KL per token.
        reward_coef: the weight of the reward's group advantages (0 with a teacher: distillation alone,
            where a group of 1 is enough).
        agent: an agent program file (`async def run(example, base_url) -> reward`, fireact.gateway.driver)
            that plays the episodes instead of fireact's loop: each step the current weights are served
            behind a recording gateway in this process, the program runs G times per question against
            it, and its recorded token ids and rewards are the group (sampling temperature: the one
            the program asks for, which must equal `rollouts.temperature`; default 1.0 both).
        data_dir: where the task data and the search snapshot are (default: $FIREACT_DATA_DIR).
        **kwargs: FireActLM's arguments (model, LoRA, optimizer, init_adapter, ...).
    """

    def __init__(
        self,
        rollouts: EpisodeConfig | None = None,
        group_size: int = 8,
        clip_eps: float = 0.2,
        kl_coef: float = 0.0,
        reward: str = "env",
        format_penalty: float = 0.0,
        seen_bonus: float = 0.0,
        refill: int = 0,
        gold_path_coef: float = 0.0,
        ppo_epochs: int = 1,
        micro_batch_tokens: int = 4096,
        data_dir: str | None = None,
        rollout_servers: list[str] | None = None,
        server_model: str | None = None,
        push_dir: str | None = None,
        tis_cap: float = 2.0,
        teacher: str | None = None,
        teacher_model: str | None = None,
        distill_coef: float = 1.0,
        distill_below: float | None = None,
        reward_coef: float = 1.0,
        agent: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if agent and rollout_servers:
            raise FireactError("model.agent samples through this process's own gateway: leave rollout_servers empty")
        self._agent = load_agent(agent) if agent else None
        if rollout_servers and self.hparams.finetune != "lora":
            raise FireactError("model.rollout_servers needs LoRA training: full weights are not pushed to servers")
        if reward not in REWARDS:
            raise FireactError(f"model.reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        if refill < 0:
            raise FireactError(f"model.refill must be 0 or more sampling rounds, got {refill}")
        if gold_path_coef < 0:
            raise FireactError(f"model.gold_path_coef must be >= 0, got {gold_path_coef}")
        if tis_cap <= 0:  # a cap of 0 zeroes the policy gradient, a negative one reverses it
            raise FireactError(f"model.tis_cap must be > 0, got {tis_cap}")
        _check_teacher_settings(teacher, reward_coef, distill_coef, distill_below, kl_coef, group_size)
        self._teacher_kind = teacher_kind(teacher) if teacher else None
        if self._teacher_kind == "adapter" and self.hparams.finetune != "lora":
            raise FireactError("model.teacher is a LoRA adapter: it loads beside the student's, which needs finetune: lora")
        self.rollout_config = rollouts or EpisodeConfig(temperature=1.0)
        if self.rollout_config.temperature <= 0:
            raise FireactError("GRPO samples: rollouts.temperature must be > 0")
        self.automatic_optimization = False
        self._tool = None
        self._servers: TokenServersLM | None = None
        self._pushed: str | None = None  # the adapter the servers sample with (unloaded after the next push)
        self._push_seconds = 0.0
        self._titles: dict[str, list[str]] = {}  # question id -> supporting titles (gold_path_coef > 0)
        self._teacher: HFTeacher | ServerTeacher | None = None  # a teacher that is not an adapter here

    # ----------------------------------------------------------------- rollouts
    def setup(self, stage: str) -> None:
        super().setup(stage)
        from lightning.pytorch.strategies import DeepSpeedStrategy

        if isinstance(self.trainer.strategy, DeepSpeedStrategy):
            raise FireactError(
                "GRPO does not run under DeepSpeed (ZeRO-3 generation needs every rank in lockstep, and "
                "Lightning's DeepSpeed takes no manual optimization): use LoRA on one process or strategy: ddp"
            )
        h = self.hparams
        if h.gold_path_coef > 0 and not self._titles:
            pool = self.trainer.datamodule.pool
            check_gold_path_pool(pool.tasks, pool.split, "model.gold_path_coef")
            self._titles = supporting_titles(resolve_data_dir(h.data_dir), pool.split)
        if h.rollout_servers and self._servers is None:  # checked now: a wrong URL or name stops the run at once
            seed = self.rollout_config.sampling_seed + self.trainer.global_rank
            self._servers = TokenServersLM(h.rollout_servers, h.server_model or "", None,
                                           concurrency=self.rollout_config.batch_size, seed=seed)  # fmt: skip
            if h.server_model:
                self._servers.check()

    def configure_model(self) -> None:
        super().configure_model()
        h = self.hparams
        if h.kl_coef > 0 and h.init_adapter and REFERENCE not in self.model.peft_config:
            self.model.load_adapter(h.init_adapter, adapter_name=REFERENCE, is_trainable=False)
            self.model.set_adapter("default")
        if self._teacher_kind == "adapter" and TEACHER not in self.model.peft_config:
            self._load_teacher_adapter(h.teacher)
        elif self._teacher_kind == "model" and self._teacher is None:
            self._teacher = HFTeacher(h.teacher, self.tokenizer, h.micro_batch_tokens)
        elif self._teacher_kind == "server" and self._teacher is None:
            self._teacher = ServerTeacher(h.teacher, h.teacher_model)

    def _load_teacher_adapter(self, folder: str) -> None:
        base = PeftConfig.from_pretrained(folder).base_model_name_or_path or ""
        if Path(base).name != Path(self.model_path).name:
            raise FireactError(f"model.teacher: the adapter {folder!r} was trained on {base!r}, the student is "
                               f"{self.model_path!r}; give a teacher model instead")  # fmt: skip
        try:
            self.model.load_adapter(folder, adapter_name=TEACHER, is_trainable=False)
        except (OSError, ValueError) as e:
            raise FireactError(f"model.teacher: cannot load the adapter {folder!r}: {e}") from e
        self.model.set_adapter("default")

    def rollout_lm(self) -> HFLM | TokenServersLM:
        """This step's sampler: the live model here, or the servers with this step's adapter pushed."""
        if self._servers is None:
            return HFLM(
                self.model, self.tokenizer, name=f"hf:grpo@step{self.global_step}", prompt_style=self.prompt_style
            )
        root = Path(self.hparams.push_dir or Path(self.trainer.default_root_dir) / "rollout_adapters").resolve()
        name = f"fireact-step{self.global_step}"
        self._servers.tokenizer, self._servers.prompt_style = (
            self.tokenizer,
            self.prompt_style,
        )  # the model's, now loaded
        if self.trainer.is_global_zero:  # one rank writes and pushes; the others wait for it
            self.model.save_pretrained(str(root / name), selected_adapters=["default"])
            self._push_seconds = self._servers.push_adapter(name, str(root / name), self._pushed)
            old = root / f"fireact-step{self.global_step - 2}"
            shutil.rmtree(old, ignore_errors=True)  # the one before the previous is no longer served
        self.trainer.strategy.barrier()
        self._servers.model = self._pushed = name
        return self._servers

    def play(self, questions: list[Example]) -> list[Trajectory]:
        """G sampled episodes per question with the current weights, tokens and log-probs recorded."""
        if self._agent is not None:
            return self.play_program(questions)

        if self._tool is None:
            pool = getattr(self.trainer.datamodule, "pool", None)  # its environment, or the tool measured best for it
            root = resolve_data_dir(self.hparams.data_dir, must_exist=getattr(pool, "env", None) is None)
            self._tool = self.rollout_config.make_tool(root, pool)
        world, rank = self.trainer.world_size, self.trainer.global_rank
        cfg = replace(
            self.rollout_config,
            samples=self.hparams.group_size,
            record_tokens=True,
            sampling_seed=self.rollout_config.sampling_seed + self.global_step * world + rank,
        )
        lm = self.rollout_lm()
        self.model.eval()
        try:
            with torch.no_grad():
                return run_rollouts(lm, self._tool, sorted(questions, key=lambda q: q.task), cfg, source="grpo")
        finally:
            self.model.train()

    def play_program(self, questions: list[Example]) -> list[Trajectory]:
        """The agent program's G runs per question against the current weights, through a gateway."""
        lm = HFLM(self.model, self.tokenizer, name=f"hf:grpo@step{self.global_step}", prompt_style=self.prompt_style)
        served = served_model(lm, "policy", self.prompt_style, slots=self.rollout_config.batch_size)
        record = Path(self.trainer.default_root_dir) / "recordings" / f"rank{self.trainer.global_rank}"
        self.model.eval()
        try:
            trajs, _ = run_program(served, self._agent, questions, self.hparams.group_size, record,
                                   self.rollout_config.batch_size)  # fmt: skip
        finally:
            self.model.train()
        return [t for t in trajs if t.token_turns]

    def scored_groups(self, questions: list[Example], seconds: dict) -> tuple[list[Trajectory], list[float], list[str]]:
        """(episodes, rewards, group of each) of the questions played G times; adds to `seconds`."""
        h, started = self.hparams, time.perf_counter()
        trajs = self.play(questions)
        scoring = time.perf_counter()
        rewards = [episode_reward(t, h.reward, h.format_penalty, h.seen_bonus) for t in trajs]
        seconds["sampling"] += scoring - started
        seconds["scoring"] += time.perf_counter() - scoring
        return trajs, rewards, [group_of(t) for t in trajs]

    def refilled_groups(
        self, trajs: list[Trajectory], rewards: list[float], groups: list[str], seconds: dict
    ) -> tuple[list[Trajectory], list[float], list[str], int]:
        """The step's groups with those of equal rewards replaced by new questions' (`refill`)."""
        added = 0
        for k in range(1, self.hparams.refill + 1):
            dead, played = equal_reward_groups(rewards, groups), set(groups)
            pool = [q for q in self.trainer.datamodule.questions if group_of(q) not in played]
            if not dead or not pool:
                break
            rng = random.Random(
                f"refill/{self.trainer.datamodule.seed}/{self.global_step}/{self.trainer.global_rank}/{k}"
            )
            more = self.scored_groups(rng.sample(pool, min(len(dead), len(pool))), seconds)
            keep = [i for i, g in enumerate(groups) if g not in dead]
            trajs, rewards, groups = ([old[i] for i in keep] + new for old, new in zip((trajs, rewards, groups), more))
            added += len(set(more[2]))
        return trajs, rewards, groups, added

    def gold_path_rows(self, trajs: list[Trajectory]) -> tuple[list[TokenRow], float]:
        """The teacher's demonstrations of the step's unsolved questions, rendered as SFT trains them, and
        their trained tokens over all ranks (the teacher loss is a token mean of them; a collective)."""
        if self.hparams.gold_path_coef <= 0:
            return [], 1
        demos = unsolved_gold_paths(trajs, self._titles, self._tool)
        rows = encode(demos, self.tokenizer, self.prompt_style or PromptStyle()) if demos else []
        return rows, max(sum_over_ranks(self.trainer, sum(r.num_trained for r in rows)), 1)

    # ----------------------------------------------------------------- loss
    def _trained_logits(self, rows: list[TokenRow]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(fp32 logits predicting each trained token of `rows`, those tokens, their sampling log-probs
        when the rows carry them), in row order. Packed in order by SFT's `collate` (block-diagonal
        attention, positions restarting at each row); the LM head runs at the trained tokens only."""
        packs = pack_in_order([len(r) for r in rows], max(len(r) for r in rows))
        batch = collate(rows, packs, self.tokenizer.pad_token_id, packed=True)
        inputs = {k: v.to(self.device) for k, v in model_inputs(batch, self.model).items()}
        targets = inputs.pop("labels")[:, 1:]  # position t predicts token t+1
        keep = targets != IGNORE_INDEX
        sampled = batch.get("sampled_logprobs")
        sampled = None if sampled is None else sampled[:, 1:].to(self.device)[keep]
        return self.trained_logits(inputs, keep), targets[keep], sampled

    def token_logprobs(self, rows: list[TokenRow]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(log-probs under the current weights, sampling log-probs: None for rows without them) of every
        trained token of `rows`, flattened in row order; temperature-scaled as sampled."""
        logits, targets, sampled = self._trained_logits(rows)
        new = sampling_logprobs(logits, self.rollout_config.temperature).gather(-1, targets[:, None])[:, 0]
        return new, sampled

    def reference_logprobs(self, rows: list[TokenRow]) -> torch.Tensor:
        """Log-probs under the starting policy: the frozen init adapter, or the adapter-disabled base."""
        if REFERENCE in getattr(self.model, "peft_config", {}):
            return self._frozen_adapter_logprobs(REFERENCE, rows, self.rollout_config.temperature)
        with torch.no_grad(), self.model.disable_adapter():
            return self.token_logprobs(rows)[0]

    def teacher_logprobs(self, rows: list[TokenRow]) -> torch.Tensor:
        """The teacher's log-prob (its own distribution, temperature 1) of every trained token of `rows`,
        flattened in row order as `token_logprobs`."""
        if self._teacher is None:
            return self._frozen_adapter_logprobs(TEACHER, rows, 1.0)
        if isinstance(self._teacher, HFTeacher):
            self._teacher.to(self.device)  # not a submodule: Lightning does not move it (nor train or save it)
        scores = self._teacher.logprobs([r.input_ids.tolist() for r in rows])  # position t: token t given < t
        picked = [s[r.trained[1:]] for r, s in zip(rows, scores)]
        return torch.from_numpy(np.concatenate(picked)).to(self.device, torch.float32)

    def _frozen_adapter_logprobs(self, name: str, rows: list[TokenRow], temperature: float) -> torch.Tensor:
        """Log-probs under a frozen adapter, in eval mode (its own LoRA dropout off)."""
        training = self.model.training
        self.model.set_adapter(name)
        self.model.eval()
        try:
            with torch.no_grad():
                logits, targets, _ = self._trained_logits(rows)
                return sampling_logprobs(logits, temperature).gather(-1, targets[:, None])[:, 0]
        finally:
            self.model.train(training)
            self.model.set_adapter("default")
            for n, p in self.model.named_parameters():  # set_adapter moves trainability: restore it
                if "lora_" in n:
                    p.requires_grad_(not any(f".{f}." in n for f in FROZEN))

    def training_step(self, batch: list[Example], batch_idx: int) -> torch.Tensor:
        h = self.hparams
        seconds: dict[str, float] = defaultdict(float)
        trajs, rewards, groups = self.scored_groups(batch, seconds)
        step_metrics = episode_metrics(trajs, rewards, groups)  # the step's own questions, before any refill
        trajs, rewards, groups, refilled = self.refilled_groups(trajs, rewards, groups, seconds)
        advantages = [h.reward_coef * a for a in group_advantages(rewards, groups)]
        under = [h.teacher is not None and (h.distill_below is None or r < h.distill_below) for r in rewards]
        teacher, all_teacher = self.gold_path_rows(trajs)
        rows, row_adv, row_under = advantage_rows(trajs, groups, advantages, under)
        sampled = sum(len(x.generated) for t in trajs for x in t.token_turns)
        n_trained = sum(r.num_trained for r in rows)
        all_trained = max(sum_over_ranks(self.trainer, n_trained), 1)  # the loss is a token mean over all ranks
        optimizer = self.optimizers()
        stats: dict[str, float] = defaultdict(float)
        started = time.perf_counter()
        trainer_old: dict[int, torch.Tensor] = {}  # server rollouts: the trainer's log-probs before any update
        teacher_lp: dict[int, torch.Tensor] = {}  # the teacher's log-probs of each micro-batch, scored once
        for _ in range(h.ppo_epochs):
            optimizer.zero_grad()
            with self._local_backward():
                self._policy_loss(rows, row_adv, row_under, all_trained, stats, trainer_old, teacher_lp)
                self._gold_path_loss(teacher, all_teacher, stats)
            sum_grads_over_ranks(
                self.trainer, self.parameters()
            )  # each rank a different number of backward passes: sum once
            self._stop_if_not_finite(torch.tensor(stats["loss"] + stats["gold_path_nll"]))
            self.clip_gradients(optimizer, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
            optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        training_seconds = time.perf_counter() - started
        tokens = max(n_trained * h.ppo_epochs, 1)
        metrics = {
            **{f"train/{k}": v for k, v in step_metrics.items()},
            "train/refilled": refilled,
            "train/loss": stats["loss"] / max(h.ppo_epochs, 1),
            "train/clip_frac": stats["clipped"] / tokens,
            "train/ratio_mean": stats["ratio"] / tokens if rows else 1.0,
            "train/kl": stats["kl"] / tokens,
            "train/sampled_tokens_per_sec": sampled / max(seconds["sampling"], 1e-9),
            "train/trained_tokens_per_sec": n_trained * h.ppo_epochs / max(training_seconds, 1e-9),
            "train/sampling_share": seconds["sampling"] / max(seconds["sampling"] + training_seconds, 1e-9),
            "train/sampling_seconds": seconds["sampling"],
            "train/scoring_seconds": seconds["scoring"],
            "train/training_seconds": training_seconds,
        }
        if h.teacher is not None:
            metrics |= {"train/teacher_share": sum(under) / max(len(under), 1),
                        "train/teacher_kl": stats["teacher_kl"] / max(stats["teacher_tokens"], 1)}  # fmt: skip
        if h.gold_path_coef > 0:  # the demonstrations' NLL per token (this rank's), the teacher loss unweighted
            metrics |= {"train/gold_paths": len(teacher),
                        "train/gold_path_nll": stats["gold_path_nll"] / max(sum(r.num_trained for r in teacher) * h.ppo_epochs, 1)}  # fmt: skip
        if h.rollout_servers:  # how far the servers' log-probs are from the trainer's (TIS corrects it)
            metrics |= {"train/logprob_mismatch": stats["mismatch"] / tokens, "train/mismatch_kl": stats["mismatch_kl"] / tokens,
                        "train/tis_capped_frac": stats["tis_capped"] / tokens, "train/adapter_push_seconds": self._push_seconds}  # fmt: skip
        self.log_dict(metrics, batch_size=len(trajs), sync_dist=True)
        self.log("reward", metrics["train/reward_mean"], prog_bar=True, batch_size=len(trajs), sync_dist=True)
        return torch.tensor(metrics["train/loss"])

    def _policy_loss(
        self, rows: list[TokenRow], row_adv: list[float], row_under: list[bool], all_trained: int, stats: dict,
        trainer_old: dict, teacher_lp: dict,
    ) -> None:  # fmt: skip
        """Backward of the clipped policy-gradient loss (+ k3 KL, or + the teacher's term) in micro-batches
        of rows. Rows a server sampled: the ratio is to the trainer's own log-probs before the update
        (taken in the first epoch), and the server's log-probs weight the loss by truncated importance
        sampling."""
        h = self.hparams
        for k, chunk in enumerate(token_budget_chunks(rows, h.micro_batch_tokens)):
            part = [rows[i] for i in chunk]
            new, old = self.token_logprobs(part)
            behaviour = None
            if h.rollout_servers:
                behaviour, old = old, trainer_old.setdefault(k, new.detach())
            adv = _per_token(rows, chunk, row_adv).to(new.device)
            if h.teacher is not None:
                under = _per_token(rows, chunk, row_under).to(new.device)
                if k not in teacher_lp:  # scored once a step, whatever ppo_epochs is
                    teacher_lp[k] = self.teacher_logprobs(part)
                scored = teacher_lp[k]
                per_token, chunk_stats = teacher_policy_loss(new, old, scored, adv, under, h.clip_eps, h.distill_coef,
                                                             behaviour, h.tis_cap)  # fmt: skip
            else:
                ref = self.reference_logprobs(part) if h.kl_coef > 0 else None
                per_token, chunk_stats = clipped_policy_loss(
                    new, old, adv, h.clip_eps, ref, h.kl_coef, behaviour, h.tis_cap
                )
            loss = per_token.sum() / all_trained
            self.manual_backward(loss)
            stats["loss"] += float(loss.detach())
            for k, v in chunk_stats.items():
                stats[k] += v

    def _gold_path_loss(self, rows: list[TokenRow], all_tokens: float, stats: dict) -> None:
        """Backward of `gold_path_coef` x the demonstrations' SFT loss (a token mean over all ranks), in
        micro-batches; `stats["gold_path_nll"]` sums this rank's per-token NLL."""
        for chunk in token_budget_chunks(rows, self.hparams.micro_batch_tokens):
            logits, targets, _ = self._trained_logits([rows[i] for i in chunk])
            nll = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
            self.manual_backward(self.hparams.gold_path_coef * nll / all_tokens)
            stats["gold_path_nll"] += float(nll.detach())

    # ----------------------------------------------------------------- ranks
    def _local_backward(self):
        """Backward passes that do not all-reduce (DDP's no_sync); `sum_grads_over_ranks` does it once."""
        block = getattr(self.trainer.strategy, "block_backward_sync", None)
        return block() if block is not None and self.trainer.world_size > 1 else contextlib.nullcontext()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Validation is the rollout callback's live EM (held-out questions); no loss to compute."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if "state_dict" in checkpoint:  # the frozen reference is the init adapter itself: not saved again
            checkpoint["state_dict"] = {
                k: v for k, v in checkpoint["state_dict"].items() if not any(f".{f}." in k for f in FROZEN)
            }
