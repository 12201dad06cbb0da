"""FireActLM pieces that need no Trainer: packing isolation under each attention kernel, LoRA wiring, the loss."""

from __future__ import annotations

import pytest
import torch

from fireact.data.token_row import IGNORE_INDEX, TokenRow
from fireact.errors import FireactError
from fireact.modules.lm_module import FireActLM


@pytest.mark.parametrize("head_on_trained_only", [True, False])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_examples_never_see_each_other(tiny_model_dir, attn, head_on_trained_only):
    """The token-summed loss of one packed row equals the sum of its examples' losses computed alone."""
    from fireact.data.batching import collate

    module = FireActLM(
        model=tiny_model_dir, lora_dropout=0.0, attn_implementation=attn, head_on_trained_only=head_on_trained_only
    )
    module.configure_model()
    module.model.eval()
    assert module.model.config._attn_implementation == attn
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(5, 500, (n,), generator=g).numpy() for n in (9, 6, 12)]
    labels = [x.copy() for x in ids]
    for lab in labels:
        lab[:3] = IGNORE_INDEX  # a masked prompt, as every rendered example starts with one
    with torch.no_grad():
        rows = [TokenRow(i, lab != IGNORE_INDEX) for i, lab in zip(ids, labels)]
        packed = collate(rows, [[0, 1, 2]], 0, packed=True)
        together = module(packed) * packed["num_trained_tokens"]
        alone = sum(module(b) * b["num_trained_tokens"] for b in (collate(rows, [[i]], 0, False) for i in range(3)))
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-5)


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


def test_lora_on_the_top_layers_only_stops_backward_there(tiny_model_dir):
    """The adapter on the last layer only: no gradient graph below it (nothing saved for backward)."""
    import torch

    module = FireActLM(model=tiny_model_dir, lora_r=4, lora_top_layers=1, lora_target_modules=["q_proj", "up_proj"])
    module.configure_model()
    trainable = module.trainable_state_keys()
    assert trainable and all(".layers.1." in k for k in trainable)  # the tiny model has layers 0 and 1
    seen = []
    module.model.base_model.model.model.layers[0].register_forward_hook(lambda m, i, out: seen.append(out))
    ids = torch.randint(100, 200, (1, 8))
    module({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids})
    below = seen[0][0] if isinstance(seen[0], tuple) else seen[0]
    assert not below.requires_grad
    with pytest.raises(FireactError, match="lora_top_layers must be >= 1"):
        FireActLM(model=tiny_model_dir, lora_top_layers=0)
    with pytest.raises(FireactError, match="lora_top_layers shapes a new LoRA adapter"):
        FireActLM(model=tiny_model_dir, finetune="full", lora_top_layers=2)
    with pytest.raises(FireactError, match="2 decoder layers"):
        FireActLM(model=tiny_model_dir, lora_top_layers=3).configure_model()


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
        lab[: len(lab) // 2] = IGNORE_INDEX  # the prompt half is masked
    for packed in (False, True):
        rows = [TokenRow(i, lab != IGNORE_INDEX) for i, lab in zip(ids, labels)]
        batch = collate(rows, [[0, 1], [2]] if packed else [[0], [1], [2]], 0, packed)
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
