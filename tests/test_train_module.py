"""FireActLM pieces that need no Trainer: token accounting on 2D and packed 4D masks, LoRA wiring."""

from __future__ import annotations

import pytest
import torch

from fireact.data.errors import FireactError
from fireact.modules.lm_module import FireActLM


def test_token_counts_2d_mask():
    batch = {
        "input_ids": torch.ones(2, 5, dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]),
        "labels": torch.tensor([[-100, 5, 6, -100, -100], [-100, -100, 7, 8, 9]]),
    }
    assert FireActLM.token_counts(batch) == (10, 8, 5)


@pytest.mark.parametrize("additive", [False, True])
def test_token_counts_packed_4d_mask(additive):
    # one row packing two sequences of 2 and 3 tokens, then 1 padding position (attends to nothing)
    allowed = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    for start, end in [(0, 2), (2, 5)]:
        allowed[0, 0, start:end, start:end] = torch.tril(torch.ones(end - start, end - start, dtype=torch.bool))
    mask = torch.where(allowed, 0.0, torch.finfo(torch.float32).min) if additive else allowed
    batch = {
        "input_ids": torch.ones(1, 6, dtype=torch.long),
        "attention_mask": mask,
        "labels": torch.tensor([[-100, 4, -100, 5, 6, -100]]),
    }
    assert FireActLM.token_counts(batch) == (6, 5, 3)


def test_lora_wiring_and_idempotent_configure(tiny_model_dir):
    module = FireActLM(model=tiny_model_dir, finetune="lora", lora_r=4, lora_target_modules=["q_proj", "o_proj"])
    module.configure_model()
    model = module.model
    module.configure_model()
    assert module.model is model and module.tokenizer is not None
    trainable = module.trainable_state_keys()
    assert trainable and all("lora_" in k and ("q_proj" in k or "o_proj" in k) for k in trainable)
    assert module.model.training  # from_pretrained's eval mode would silently disable LoRA dropout
    assert module.hparams.lora_target_modules == ["q_proj", "o_proj"]
    assert FireActLM(model=tiny_model_dir).hparams.lora_target_modules == ["q_proj", "v_proj"]  # recorded default


def test_full_trains_everything(tiny_model_dir):
    module = FireActLM(model=tiny_model_dir, finetune="full")
    module.configure_model()
    assert module.trainable_state_keys() == {n for n, _ in module.named_parameters()}


def test_bad_settings_are_clear_errors(tiny_model_dir, tmp_path):
    with pytest.raises(FireactError, match="finetune"):
        FireActLM(model=tiny_model_dir, finetune="qlora")
    with pytest.raises(FireactError, match="lora_target_modules"):
        FireActLM(model=tiny_model_dir, lora_target_modules=["no_such_proj"]).configure_model()
    with pytest.raises(FireactError, match="cannot load"):
        FireActLM(model=str(tmp_path / "missing")).configure_model()
