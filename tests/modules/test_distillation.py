"""On-policy distillation in GRPO's module: the teacher scores the student's sampled tokens and its
per-token reverse KL joins the advantage. The teacher's three homes (an adapter on the student's base,
an HF model, a real `fireact serve` answering vLLM's `prompt_logprobs` to the real openai client) give
the same scores; a student that is its own teacher gets no gradient; distillation alone pulls a
student toward its teacher; DGPO's selective form puts only the episodes below the threshold under
the term."""

from __future__ import annotations

import csv
import threading

import openai
import pytest
import torch

from fireact.data.token_row import TokenRow
from fireact.errors import FireactError
from fireact.rollout.config import RolloutConfig

pytestmark = pytest.mark.slow(seconds=7)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, smollm2_dir) -> str:
    """A tiny random model whose next-token distributions are peaked (embeddings, tied to the head, scaled
    up): the shared tiny model's are near uniform, so any two of its variants are within ~0.02 nats."""
    from conftest import make_tiny_model
    from transformers import AutoModelForCausalLM

    folder = make_tiny_model(tmp_path_factory.mktemp("peaked"), smollm2_dir, seed=3)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(6.0)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def teacher_adapter(tiny_model_dir, tmp_path_factory) -> str:
    """A LoRA adapter on the tiny model with random (non-zero) weights: a teacher unlike its base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("teacher")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=4, lora_alpha=32, lora_dropout=0.5, target_modules=["q_proj", "v_proj", "up_proj"],
                        init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(out)
    return str(out)


def student(tiny_model_dir, **kw):
    from fireact.modules.grpo import GRPOLM

    defaults = dict(model=tiny_model_dir, lora_r=4, lora_dropout=0.0, lora_target_modules=["q_proj", "v_proj"],
                    reward_coef=0.0, group_size=1, warmup=0.0,
                    rollouts=RolloutConfig(temperature=1.0, max_turns=2, max_tokens=12, batch_size=8))  # fmt: skip
    return GRPOLM(**(defaults | kw))


def fit(tmp_path, module, world, steps: int) -> list[dict]:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from fireact.modules.questions import QuestionDataModule

    pl.seed_everything(0)
    pool = RolloutConfig(tasks=["synthetic"], split="train")
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, limit_val_batches=0, log_every_n_steps=1,
                         logger=CSVLogger(tmp_path, name="d"), enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, QuestionDataModule(pool=pool, questions_per_step=4, data_dir=str(world)))
    rows = csv.DictReader(open(next(tmp_path.glob("d/*/metrics.csv"))))
    return [{k: float(v) for k, v in r.items() if v} for r in rows if r.get("train/loss")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from fireact.data.synthetic import write_world

    return write_world(tmp_path_factory.mktemp("world"), n_people=20, n_dev=4)


def test_the_teachers_three_homes_score_alike(tiny_model_dir, teacher_adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fireact.lm.hf import HFLM
    from fireact.lm.teacher import HFTeacher, ServerTeacher
    from fireact.modules.grpo import TEACHER
    from fireact.serve.server import make_server

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), teacher_adapter)
    merged.merge_and_unload().save_pretrained(tmp_path / "merged")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "merged")

    module = student(tiny_model_dir, teacher=teacher_adapter)
    module.configure_model()
    module.model.train()  # as in a training step: the teacher still scores without its dropout
    trainable = module.trainable_state_keys()
    assert trainable and not any(TEACHER in k for k in trainable)  # the teacher adapter is frozen
    ids = [[1, 330, 2046, 17, 905, 64, 3001, 12, 9], [1, 77, 78, 79, 80]]
    rows = [TokenRow(x, [False, False] + [True] * (len(x) - 2)) for x in ids]
    as_adapter = module.teacher_logprobs(rows)
    torch.testing.assert_close(module.teacher_logprobs(rows), as_adapter, rtol=0, atol=0)
    assert module.model.training

    def picked(scores):
        return torch.cat([torch.from_numpy(s[1:]) for s in scores])  # positions 2.. are the trained ones

    as_model = picked(HFTeacher(str(tmp_path / "merged"), module.tokenizer).logprobs(ids))
    server = make_server(HFLM(str(tmp_path / "merged"), dtype=torch.float32), port=0, model_name="teacher")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        served = ServerTeacher(f"http://127.0.0.1:{server.server_address[1]}")
        as_server = picked(served.logprobs(ids))
        with pytest.raises(openai.BadRequestError, match="prompt_logprobs must be 0 or 1") as refused:
            served.client.completions.create(model="teacher", prompt=ids[0], max_tokens=1,
                                             extra_body={"prompt_logprobs": 5})  # fmt: skip
        assert refused.value.body["param"] == "prompt_logprobs"
    finally:
        server.shutdown()
        server.server_close()
        server.service.close()
    assert as_adapter.shape == (len(ids[0]) + len(ids[1]) - 4,)
    torch.testing.assert_close(as_model, as_adapter, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(as_server, as_adapter, atol=1e-4, rtol=1e-4)
    module.model.eval()
    with torch.no_grad(), module.model.disable_adapter():  # the teacher is not the base
        assert not torch.allclose(module.token_logprobs(rows)[0], as_adapter, atol=1e-3)


def test_a_student_that_is_its_own_teacher_gets_no_gradient(tiny_model_dir, teacher_adapter, world, tmp_path):
    module = student(tiny_model_dir, init_adapter=teacher_adapter, teacher=teacher_adapter, data_dir=str(world))
    [row] = fit(tmp_path, module, world, steps=1)
    assert row["train/teacher_share"] == 1.0
    assert abs(row["train/teacher_kl"]) < 1e-4 and abs(row["train/loss"]) < 1e-5


def test_distillation_alone_pulls_the_student_to_its_teacher(tiny_model_dir, teacher_adapter, world, tmp_path):
    module = student(tiny_model_dir, teacher=teacher_adapter, lr=2e-2, data_dir=str(world))
    rows = fit(tmp_path, module, world, steps=8)
    kl = [r["train/teacher_kl"] for r in rows]
    assert kl[0] > 0.05, kl  # the KL estimate on the student's own samples, before each step's update
    assert sum(kl[-2:]) / 2 < 0.5 * sum(kl[:2]) / 2, f"the student-teacher KL did not fall: {kl}"


def test_dgpo_puts_only_episodes_below_the_threshold_under_the_teacher(tiny_model_dir, teacher_adapter, world, tmp_path):
    # a random tiny model earns reward 0 everywhere: nothing is below 0, everything is below 0.5
    module = student(tiny_model_dir, teacher=teacher_adapter, reward_coef=1.0, group_size=2, distill_below=0.0,
                     data_dir=str(world))  # fmt: skip
    [row] = fit(tmp_path / "none", module, world, steps=1)
    assert row["train/teacher_share"] == 0.0 and row["train/loss"] == 0.0  # equal rewards, no teacher: no rows
    module = student(tiny_model_dir, teacher=teacher_adapter, reward_coef=1.0, group_size=2, distill_below=0.5,
                     data_dir=str(world))  # fmt: skip
    [row] = fit(tmp_path / "all", module, world, steps=1)
    assert row["train/reward_mean"] == 0.0 and row["train/teacher_share"] == 1.0 and row["train/teacher_kl"] > 0


def test_teacher_settings_are_checked_before_any_model_loads(tiny_model_dir, teacher_adapter, tmp_path):
    with pytest.raises(FireactError, match="reward_coef: 0 and model.distill_below need a model.teacher"):
        student(tiny_model_dir)
    with pytest.raises(FireactError, match="teacher's term is already a KL"):
        student(tiny_model_dir, teacher=teacher_adapter, kl_coef=0.1)
    with pytest.raises(FireactError, match="which needs finetune: lora"):
        student(tiny_model_dir, teacher=teacher_adapter, finetune="full")
    with pytest.raises(FireactError, match="group_size must be at least 2"):
        student(tiny_model_dir, teacher=teacher_adapter, reward_coef=1.0)
    with pytest.raises(FireactError, match="distill_coef must be >= 0"):
        student(tiny_model_dir, teacher=teacher_adapter, distill_coef=-1.0)
