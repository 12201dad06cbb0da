"""GRPO's pieces around the loss: the training pool check, the KL reference, GRPO under DDP."""

from __future__ import annotations

import numpy as np
import pytest

from fireact.data.synthetic import write_world
from fireact.errors import FireactError
from fireact.modules.questions import QuestionDataModule
from fireact.rollout.config import RolloutConfig


def test_pool_must_not_touch_evaluated_questions(tmp_path):
    world = write_world(tmp_path / "world", n_people=20, n_dev=4)
    ok = QuestionDataModule(pool=RolloutConfig(tasks=["synthetic"], split="train"), data_dir=str(world))
    ok.setup("fit")
    assert len(ok.questions) == 16 and all(q.answer for q in ok.questions)
    clash = QuestionDataModule(
        pool=RolloutConfig(tasks=["synthetic"], split="dev"), exclude=[RolloutConfig(tasks=["synthetic"], n=2)],
        data_dir=str(world),
    )  # fmt: skip
    with pytest.raises(FireactError, match="2 training questions are also evaluated .*synthetic/dev"):
        clash.setup("fit")


def test_hotpotqa_pool_is_fireacts_training_questions(data_dir):
    from fireact.data.tasks import get_task

    train = get_task("hotpotqa").load(data_dir, "train")
    assert len(train) == 500 and all(e.answer for e in train)
    dm = QuestionDataModule(data_dir=str(data_dir))  # default: hotpotqa/train vs the 100 scored dev questions
    dm.setup("fit")
    assert len(dm.questions) == 500


def test_kl_reference_is_the_frozen_start_adapter(tiny_model_dir, tmp_path):
    """With an init adapter, the KL reference is that adapter frozen: training the live one leaves it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from fireact.data.token_row import TokenRow
    from fireact.modules.grpo import GRPOLM, REFERENCE

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    start = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    start.save_pretrained(tmp_path / "start")
    module = GRPOLM(model=tiny_model_dir, init_adapter=str(tmp_path / "start"), kl_coef=0.1, lora_dropout=0.0)
    module.configure_model()
    module.model.eval()
    rows = [TokenRow([5, 6, 7, 8, 9], [False, False, True, True, True], [0.0, 0.0, -1.0, -1.0, -1.0])]
    live, _ = module.token_logprobs(rows)
    ref = module.reference_logprobs(rows)
    torch.testing.assert_close(live, ref)  # at the start the two policies are the same
    with torch.no_grad():
        for name, p in module.model.named_parameters():
            if "lora_B" in name and ".default." in name:
                p.add_(0.5)
    assert not torch.allclose(module.token_logprobs(rows)[0], ref)
    torch.testing.assert_close(module.reference_logprobs(rows), ref)  # the reference did not move
    trainable = module.trainable_state_keys()
    assert trainable and all(".default." in k for k in trainable) and not any(REFERENCE in k for k in trainable)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_micro_batch_gives_each_rows_own_log_probs_and_gradient(tiny_model_dir, attn):
    """Episodes of a step packed into shared sequences (block-diagonal attention, positions restarting)
    give the log-probs and LoRA gradients of each episode run alone, in the rows' order."""
    import torch

    from fireact.data.token_row import TokenRow
    from fireact.modules.grpo import GRPOLM

    rng = np.random.default_rng(0)
    rows = []
    for n_prompt, n_steps in [(30, 25), (12, 6), (9, 4), (20, 9), (7, 3)]:  # packs as [0], [1, 2], [3, 4]
        trained = [False] * n_prompt + [True] * n_steps
        rows.append(TokenRow(list(rng.integers(100, 900, n_prompt + n_steps)), trained, [-1.0] * len(trained)))
    torch.manual_seed(0)
    module = GRPOLM(model=tiny_model_dir, lora_dropout=0.0, attn_implementation=attn)
    module.configure_model()
    with torch.no_grad():  # a non-zero adapter, so that every LoRA matrix gets a gradient
        for name, p in module.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)

    def logprobs_and_grads(batches: list[list[TokenRow]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        module.model.zero_grad()
        new = torch.cat([module.token_logprobs(b)[0] for b in batches])
        new.sum().backward()
        return new.detach(), {n: p.grad.clone() for n, p in module.model.named_parameters() if p.grad is not None}

    packed, packed_grads = logprobs_and_grads([rows])
    alone, alone_grads = logprobs_and_grads([[r] for r in rows])
    assert packed.shape == (sum(r.num_trained for r in rows),)
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    assert packed_grads.keys() == alone_grads.keys() and any("lora_A" in n for n in packed_grads)
    for name, grad in alone_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-5, rtol=1e-4)


def test_refill_replaces_equal_reward_groups_with_new_questions(tiny_model_dir):
    """DAPO's dynamic sampling: groups whose rewards all came out equal are dropped and replaced by
    pool questions not played this step; a refilled group that comes out equal is replaced again, up
    to `refill` rounds; the draw is the same when the step is replayed."""
    from collections import defaultdict
    from types import SimpleNamespace

    from fireact.data.tasks import Example
    from fireact.data.trajectory import Trajectory
    from fireact.modules.grpo import GRPOLM

    pool = [Example(f"q{i}", f"question {i}", "a", task="synthetic") for i in range(8)]
    live = {"q1", "q4", "q6", "q7"}  # the questions whose G=2 samples get different rewards

    def scored(questions, seconds):
        seconds["sampling"] += 1.0
        trajs = [
            Trajectory(q.question, "a", q.task, "react", [], None, 0.0, 0.0, id=q.id)
            for q in questions
            for _ in range(2)
        ]
        rewards = [float(q.id in live and g == 0) for q in questions for g in range(2)]
        return trajs, rewards, [f"{t.task}/{t.id}" for t in trajs]

    def refill(rounds: int) -> tuple[list[str], int, dict]:
        module = GRPOLM(model=tiny_model_dir, group_size=2, refill=rounds)
        module._trainer = SimpleNamespace(
            datamodule=SimpleNamespace(questions=pool, seed=0), global_rank=0, global_step=5
        )
        module.scored_groups = scored
        seconds = defaultdict(float)
        trajs, rewards, groups, added = module.refilled_groups(*scored(pool[:2], seconds), seconds)
        assert len(trajs) == len(rewards) == len(groups) and [f"{t.task}/{t.id}" for t in trajs] == groups
        return groups, added, seconds

    groups, added, seconds = refill(0)
    assert (groups, added) == (["synthetic/q0"] * 2 + ["synthetic/q1"] * 2, 0)  # skipped only
    groups, added, seconds = refill(3)
    ids = list(dict.fromkeys(g.split("/")[1] for g in groups))
    assert ids[0] == "q1" and "q0" not in ids  # the live group stays, the equal one is dropped
    assert added == seconds["sampling"] - 1 and added >= 1  # one question a round while a dead one remains
    assert groups == refill(3)[0]  # seeded by (data seed, step, rank, round): a replayed step refills alike
    dead = {g for g in set(groups) if g.split("/")[1] not in live}
    assert len(dead) <= 1 and (not dead or added == 3)  # a dead group is left only when the rounds ran out


@pytest.mark.slow
def test_grpo_runs_under_ddp_with_two_processes(tiny_model_dir, tmp_path):
    """2 CPU processes (gloo): each rank samples (and refills) its own questions, gradients are summed once a step,
    and nothing hangs although the ranks' episodes (and backward passes) differ."""
    import csv
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    world = write_world(tmp_path / "world", n_people=20, n_dev=4)
    config = {
        "trainer": {
            "accelerator": "cpu", "devices": 2, "strategy": "ddp", "max_steps": 2, "limit_val_batches": 0,
            "enable_progress_bar": False, "enable_checkpointing": False, "default_root_dir": str(tmp_path),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": "run"}},
            "log_every_n_steps": 1,
        },
        "model": {
            "class_path": "fireact.modules.grpo.GRPOLM",
            "init_args": {"model": tiny_model_dir, "group_size": 2, "data_dir": str(world), "format_penalty": 0.5, "refill": 1,
                          "rollouts": {"temperature": 1.0, "max_turns": 2, "max_tokens": 8, "batch_size": 4}},
        },
        "data": {
            "class_path": "fireact.modules.questions.QuestionDataModule",
            "init_args": {"pool": {"tasks": ["synthetic"], "split": "train"}, "questions_per_step": 2, "data_dir": str(world)},
        },
    }  # fmt: skip
    (tmp_path / "grpo.yaml").write_text(json.dumps(config))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "fireact.train", "fit", "--config", str(tmp_path / "grpo.yaml")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [x for x in csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))) if x.get("train/reward_mean")]
    assert [int(x["step"]) for x in rows] == [0, 1]
    assert all(abs(float(x["train/ratio_mean"]) - 1) < 1e-3 for x in rows)
    # refill: 1 under DDP (each rank refills its own share); a random tiny model never finishes, so every
    # group's rewards are equal (-0.5) and each rank replaces both of its questions
    assert all(float(x["train/refilled"]) == 2 for x in rows)
