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


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_head_on_trained_positions_gives_the_hf_loss_and_grads(tiny_model_dir, finetune):
    from fireact.data.batching import collate

    module = FireActLM(model=tiny_model_dir, finetune=finetune, lora_r=4, lora_dropout=0.0)
    module.configure_model()
    module.model.eval()
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(5, 500, (n,), generator=g).numpy() for n in (9, 6, 12)]
    labels = [x.copy() for x in ids]
    for lab in labels:
        lab[: len(lab) // 2] = -100  # the prompt half is masked
    for packed in (False, True):
        batch = collate(ids, labels, [[0, 1], [2]] if packed else [[0], [1], [2]], 0, packed)
        batch = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids", "labels")}
        module.hparams.head_on_trained_only = False
        assert module._backbone_and_head() is not None
        module.zero_grad()
        plain = module(batch)
        plain.backward()
        plain_grads = [p.grad.clone() for p in module.parameters() if p.requires_grad]
        module.hparams.head_on_trained_only = True
        module.zero_grad()
        fast = module(batch)
        fast.backward()
        torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
        for a, b in zip((p.grad for p in module.parameters() if p.requires_grad), plain_grads):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
