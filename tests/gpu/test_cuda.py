"""What only a GPU can show (issue 29), run by `bench/gpu_check.sh`: skipped without CUDA.

`FIREACT_TEST_DEVICE=cpu` runs the same checks on CPU in fp32 (fewer questions): that is how the
script's plumbing is checked on machines without a GPU.
"""

from __future__ import annotations

import os

import pytest
import torch

DEVICE = os.environ.get("FIREACT_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU")
DTYPE = torch.bfloat16 if DEVICE == "cuda" else torch.float32
QUESTIONS = 16 if DEVICE == "cuda" else 4


def test_bf16_engine_rollouts_are_hf_generate_greedy(data_dir):
    """The continuous-batching engine's greedy ReAct steps are HF generate's, one question at a time,
    on the first HotpotQA dev questions (bf16 on CUDA)."""
    from fireact.lm.hf import HFLM
    from fireact.rollout.config import RolloutConfig
    from fireact.rollout.runners import run_rollouts

    cfg = RolloutConfig(n=QUESTIONS, max_turns=3, batch_size=QUESTIONS)
    examples, tool = cfg.all_examples(data_dir), cfg.make_tool(data_dir)
    engine = HFLM("smollm2-135m", dtype=DTYPE, name="engine")
    engine.model.to(DEVICE)
    one = HFLM(engine.model, engine.tokenizer, continuous=False, batch_size=1, prefix_cache=False, name="generate")
    fast, reference = run_rollouts(engine, tool, examples, cfg), run_rollouts(one, tool, examples, cfg)
    differ = [(a.id, a.turns, b.turns) for a, b in zip(fast, reference) if a.turns != b.turns]
    assert not differ, f"{len(differ)} of {len(fast)} episodes differ; first: {differ[0]}"


def test_a_lora_training_step_moves_only_the_adapter(tmp_path, data_dir):
    import lightning.pytorch as pl

    from fireact.modules.datamodule import TrajectoryDataModule
    from fireact.modules.lm_module import FireActLM

    module = FireActLM(model="smollm2-135m", lora_r=8, lr=1e-3, warmup=0.0)
    data = TrajectoryDataModule(sources=["finetune/alpaca_format/hotpotqa.json"], data_dir=str(data_dir),
                                batch_size=4, cutoff=512, val_size=4)  # fmt: skip
    trainer = pl.Trainer(accelerator="gpu" if DEVICE == "cuda" else "cpu", devices=1, max_steps=2,
                         precision="bf16-mixed" if DEVICE == "cuda" else "32-true", limit_val_batches=0,
                         logger=False, enable_checkpointing=False, default_root_dir=tmp_path)  # fmt: skip
    module.configure_model()
    before = {k: v.detach().clone() for k, v in module.model.named_parameters()}
    trainer.fit(module, data)
    changed = {k for k, v in module.model.named_parameters() if not torch.equal(v.detach().cpu(), before[k].cpu())}
    assert changed and all("lora_" in k for k in changed)
    assert torch.isfinite(trainer.callback_metrics["train/loss"]).all()
