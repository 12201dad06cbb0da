"""GRPO's pieces without a training run: group-relative advantages, rewards, the training pool check."""

from __future__ import annotations

import pytest

from fireact.data.synthetic import write_world
from fireact.data.token_log import TokenRow
from fireact.data.trajectory import Trajectory, Turn
from fireact.errors import FireactError
from fireact.modules.grpo import episode_reward, group_advantages, token_budget_chunks
from fireact.modules.questions import QuestionDataModule
from fireact.rollout.config import RolloutConfig


def test_group_advantages_are_relative_to_the_own_group():
    adv = group_advantages([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.5], ["a", "a", "b", "b", "c", "c", "d"])
    assert adv[0] == pytest.approx(1.0, abs=1e-3) and adv[1] == pytest.approx(-1.0, abs=1e-3)
    assert adv[2:] == [0.0, 0.0, 0.0, 0.0, 0.0]  # all-equal groups (and a group of one) carry no signal
    mixed = group_advantages([1.0, 0.0, 0.0, 0.0], ["q"] * 4)
    assert sum(mixed) == pytest.approx(0.0, abs=1e-9) and mixed[0] > 0 > mixed[1]


def test_episode_reward_em_f1_and_format_penalty():
    done = Trajectory("Q", "a b", "hotpotqa", "react", [Turn("t", "finish[a]")], "a", 0.0, 0.67)
    broken = Trajectory("Q", "a", "hotpotqa", "react", [Turn("t", "search[x]", "o")], None, end_reason="max_turns")
    assert episode_reward(done, "em", 0.5) == 0.0 and episode_reward(done, "f1", 0.5) == pytest.approx(0.67)
    assert episode_reward(broken, "em", 0.5) == -0.5


def test_loss_micro_batches_stay_within_the_token_budget():
    """A row cap let 8 full episodes (~24k tokens, 30+ GB of activations) into one backward: OOM."""
    lengths = [3000, 10, 900, 1000, 5000, 950, 20, 30]
    rows = [TokenRow([1] * n, [True] * n, [0.0] * n) for n in lengths]
    chunks = token_budget_chunks(rows, 2048)
    assert sorted(i for c in chunks for i in c) == list(range(len(rows)))  # every row once
    for c in chunks:
        padded = len(c) * max(lengths[i] for i in c)
        assert padded <= 2048 or len(c) == 1  # a row longer than the budget goes alone
    assert [len(c) for c in chunks] == [1, 1, 2, 2, 2]  # longest first: 5000, 3000, 1000+950, 900+30, 20+10


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

    from fireact.data.token_log import TokenRow
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


@pytest.mark.slow
def test_grpo_runs_under_ddp_with_two_processes(tiny_model_dir, tmp_path):
    """2 CPU processes (gloo): each rank samples its own questions, gradients are summed once a step,
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
            "init_args": {"model": tiny_model_dir, "group_size": 2, "data_dir": str(world), "format_penalty": 0.5,
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
