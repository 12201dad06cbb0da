"""FireActLM: fine-tune a transformers causal LM on agent trajectories (LoRA through peft, or full).

The loss is the model's own shifted cross-entropy on `labels` (IGNORE_INDEX = masked: prompts and
observations), so only the agent's thoughts and actions are learned. The HF model is built in
`configure_model` so sharded strategies (DeepSpeed ZeRO-3) create it sharded. LoRA checkpoints hold
only the trainable (adapter) weights; the frozen base is rebuilt from `model` on load.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy

from fireact.data.batching import model_inputs
from fireact.data.prompt_style import PromptStyle
from fireact.data.token_row import IGNORE_INDEX
from fireact.errors import FireactError
from fireact.lm.models import load_tokenizer, resolve_model, text_config
from fireact.modules.checkpoint_io import use_atomic_checkpoints
from fireact.modules.datamodule import trainer_prompt_style

# FireAct's reference LoRA run (finetune/llama_lora): r=8, alpha=16, dropout 0.05 on q_proj/v_proj,
# lr 3e-4 (alpaca-lora's default). Configs for small models widen it to q/k/v/o with r=16.
DEFAULT_LORA_TARGETS = ["q_proj", "v_proj"]


def _check_hparams(**values: Any) -> None:
    """The optimiser and LoRA numbers checked when the config is read, not after the model has loaded."""
    rules = {
        "lr": (lambda v: v > 0, "> 0"),
        "weight_decay": (lambda v: v >= 0, ">= 0"),
        "betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
        "warmup": (lambda v: v >= 0, ">= 0 (steps, or a fraction of them below 1)"),
        "lora_r": (lambda v: v >= 1, ">= 1"),
        "lora_alpha": (lambda v: v > 0, "> 0"),
        "lora_dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "lora_top_layers": (lambda v: v is None or v >= 1, ">= 1 (or null: every layer)"),
    }
    for key, value in values.items():
        ok, expected = rules[key]
        if not ok(value):
            raise FireactError(f"model.{key} must be {expected}, got {value!r}")


def _zero_lora_b_under_zero3(model: torch.nn.Module) -> None:
    """Under zero.Init, parameters are partitioned as soon as they are built, so peft's in-place
    zero-init of lora_B (which makes a new adapter a no-op) touches an empty shard and the adapter
    starts random. Zero B again on the gathered parameters."""
    import deepspeed

    params = [p for name, p in model.named_parameters() if "lora_B" in name]
    with deepspeed.zero.GatheredParameters(params, modifier_rank=0):
        for p in params:
            p.data.zero_()


class NonFiniteLossError(FireactError):
    """Raised on every rank when a training loss is NaN/inf: the run stops, no checkpoint is written."""


class FireActLM(pl.LightningModule):
    """A causal LM fine-tuned on masked agent trajectories.

    Args:
        model: HF name or folder; "smollm2-135m" resolves to the cached SmolLM2-135M-Instruct.
        finetune: "lora" (peft adapter, base frozen) or "full" (all weights).
        lora_r: the LoRA adapter's rank.
        lora_alpha: the LoRA scale's numerator (the update is scaled by lora_alpha / lora_r).
        lora_dropout: dropout on the LoRA branch's input.
        lora_target_modules: the module names that get an adapter (None: DEFAULT_LORA_TARGETS).
        lora_top_layers: adapt only the last N decoder layers (None: all). Backward then stops at the
            lowest adapted layer and the frozen layers below keep no activations for it: a cheaper,
            smaller step for a smaller adapter.
        lr: AdamW's learning rate (DeepSpeedCPUAdam when DeepSpeed offloads the optimizer).
        weight_decay: AdamW's weight decay.
        betas: AdamW's betas.
        warmup: linear warmup, in steps (>= 1) or as a fraction of all steps (< 1); then cosine to 0.
        gradient_checkpointing: recompute activations in backward (less memory, ~30% slower).
        init_adapter: an exported LoRA adapter folder (`fireact export`) to start from, trained further
            (its own r/alpha/targets replace lora_*): expert-iteration rounds and GRPO start from an SFT
            agent this way; its saved prompt style is the run's when the data declares none.
        attn_implementation: the HF attention kernel ("sdpa", "eager", "flash_attention_2"; None: the
            transformers default). Packed batches stay isolated under each: the batch's block-diagonal
            mask is adapted to the kernel (`fireact.data.batching.model_inputs`).
        head_on_trained_only: compute the LM head only at trained positions (labels != IGNORE_INDEX); the
            loss is the same, the vocab-wide projection of prompt/observation tokens is skipped.
    """

    def __init__(
        self,
        model: str = "smollm2-135m",
        finetune: Literal["lora", "full"] = "lora",
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.05,
        lora_target_modules: list[str] | None = None,
        lora_top_layers: int | None = None,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup: float = 0.03,
        gradient_checkpointing: bool = False,
        head_on_trained_only: bool = True,
        attn_implementation: str | None = None,
        init_adapter: str | None = None,
    ) -> None:
        super().__init__()
        if finetune not in ("lora", "full"):
            raise FireactError(f"model.finetune must be 'lora' or 'full', got {finetune!r}")
        if lora_top_layers is not None and (finetune != "lora" or init_adapter):
            raise FireactError("model.lora_top_layers shapes a new LoRA adapter: it needs finetune: lora, no init_adapter")
        if init_adapter and finetune != "lora":
            raise FireactError("model.init_adapter is a LoRA adapter: it needs model.finetune: lora")
        _check_hparams(lr=lr, weight_decay=weight_decay, betas=betas, warmup=warmup, lora_r=lora_r,
                       lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_top_layers=lora_top_layers)  # fmt: skip
        self.save_hyperparameters()
        if finetune == "lora" and not lora_target_modules:  # record the resolved targets: defaults may change
            self.hparams.lora_target_modules = list(DEFAULT_LORA_TARGETS)
        self.model: torch.nn.Module | None = None  # built in configure_model
        self.tokenizer = None
        # LoRA checkpoints omit the frozen base: load them non-strictly, checking the adapter keys ourselves.
        self.strict_loading = finetune == "full"
        self._step_clock: float | None = None
        self._hf_deepspeed_config = None

    # ----------------------------------------------------------------- model
    @property
    def model_path(self) -> str:

        return resolve_model(self.hparams.model)

    def configure_model(self) -> None:
        """Build the HF model (and LoRA adapter) once; under ZeRO-3 this runs inside zero.Init."""
        if self.model is not None:
            return
        from transformers import AutoModelForCausalLM

        path = self.model_path
        kernel = {"attn_implementation": self.hparams.attn_implementation} if self.hparams.attn_implementation else {}
        self.tokenizer = load_tokenizer(path)
        try:
            # transformers holds this by weakref: keep it alive (from_pretrained and generate check it)
            self._hf_deepspeed_config = self._zero3_hf_config()
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.get_default_dtype(), **kernel)
        except (OSError, ValueError) as e:
            raise FireactError(f"model.model: cannot load {self.hparams.model!r} ({path}): {e}") from e
        model.config.use_cache = False
        if self.hparams.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.hparams.init_adapter:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, self.hparams.init_adapter, is_trainable=True)
            except (OSError, ValueError) as e:
                raise FireactError(f"model.init_adapter: cannot load {self.hparams.init_adapter!r}: {e}") from e
        elif self.hparams.finetune == "lora":
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(
                r=self.hparams.lora_r,
                lora_alpha=self.hparams.lora_alpha,
                lora_dropout=self.hparams.lora_dropout,
                target_modules=list(self.hparams.lora_target_modules or DEFAULT_LORA_TARGETS),
                layers_to_transform=self._top_layers(model.config),
                task_type="CAUSAL_LM",
            )
            try:
                model = get_peft_model(model, config)
            except ValueError as e:
                raise FireactError(f"model.lora_target_modules: {e}") from e
            if self._hf_deepspeed_config is not None:
                _zero_lora_b_under_zero3(model)
        self.model = model.train()  # from_pretrained returns eval mode (no dropout); Lightning keeps the mode

    def _top_layers(self, config: Any) -> list[int] | None:
        """The indices of the last `lora_top_layers` decoder layers (None: every layer)."""
        top = self.hparams.lora_top_layers
        if top is None:
            return None
        total = getattr(text_config(config), "num_hidden_layers", None)
        if total is None or top > total:
            raise FireactError(f"model.lora_top_layers is {top}, but {self.hparams.model!r} has {total} decoder layers")
        return list(range(total - top, total))

    def _zero3_hf_config(self):
        """Tell transformers that ZeRO-3 is on, so from_pretrained loads weights into partitioned params."""
        if not (self._trainer is not None and isinstance(self.trainer.strategy, DeepSpeedStrategy)):
            return None
        if not self.trainer.strategy.zero_stage_3:
            return None
        from transformers.integrations import HfDeepSpeedConfig

        return HfDeepSpeedConfig(self.trainer.strategy.config)

    @property
    def prompt_style(self) -> PromptStyle | None:
        """The format this model is trained in: the DataModule's, else the init adapter's."""
        style = trainer_prompt_style(self.trainer) if self._trainer is not None else None
        if style is None and self.hparams.init_adapter:
            style = PromptStyle.load(self.hparams.init_adapter)
        return replace(style, base_model=self.hparams.model) if style is not None else None

    def trainable_state_keys(self) -> set[str]:
        return {name for name, p in self.named_parameters() if p.requires_grad}

    # ----------------------------------------------------------------- steps
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean loss over the trained tokens; the batch's mask is adapted to the attention kernel, so
        packed examples never see each other."""
        inputs = model_inputs(batch, self.model)
        if self._head_at_trained_positions() is None:
            return self.model(**inputs).loss
        targets = inputs.pop("labels")[:, 1:]
        keep = targets != IGNORE_INDEX
        return torch.nn.functional.cross_entropy(self.trained_logits(inputs, keep), targets[keep])

    def trained_logits(self, inputs: dict[str, torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        """fp32 logits of the positions that predict a trained token (`keep`: [batch, length - 1], position
        t predicts token t + 1), for the SFT loss and GRPO's log-probs alike. The vocab-wide LM head runs
        at those positions only (same values, less work), unless the model's head is not a plain one."""
        parts = self._head_at_trained_positions()
        if parts is None:
            return self.model(**inputs).logits[:, :-1][keep].float()
        backbone, head = parts
        hidden = backbone(**inputs).last_hidden_state
        return head(hidden[:, :-1][keep]).float()

    def _head_at_trained_positions(self) -> tuple[torch.nn.Module, torch.nn.Module] | None:
        """(backbone, head) when `head_on_trained_only` is set and the model allows it, else None."""
        return self._backbone_and_head() if self.hparams.head_on_trained_only else None

    def _backbone_and_head(self) -> tuple[torch.nn.Module, torch.nn.Module] | None:
        """The decoder stack and LM head of a plain causal LM (None: let the model compute its loss)."""
        model = self.model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = getattr(base, "config", None)
        if config is None or any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale")):
            return None
        head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
        backbone = getattr(base, getattr(base, "base_model_prefix", ""), None)
        if head is None or backbone is None or backbone is base:
            return None
        return backbone, head

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self(batch)
        self._stop_if_not_finite(loss)
        positions = batch["input_ids"].numel()
        real, trained = int(batch["num_real_tokens"]), int(batch["num_trained_tokens"])
        now = time.perf_counter()
        elapsed = None if self._step_clock is None else now - self._step_clock
        self._step_clock = now
        n = batch["input_ids"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        self.log("train/padding_frac", 1.0 - real / max(positions, 1), batch_size=n)
        if self.lr_schedulers() is not None:
            self.log("lr", self.lr_schedulers().get_last_lr()[0], prog_bar=True, batch_size=n)
        if elapsed:  # per-rank rates summed over ranks (first step excluded: it includes warm-up)
            sync = {"sync_dist": True, "reduce_fx": "sum", "batch_size": n}
            self.log("train/tokens_per_sec", real / elapsed, **sync)
            self.log("train/trained_tokens_per_sec", trained / elapsed, prog_bar=True, **sync)
        return loss

    def on_train_epoch_start(self) -> None:
        self._step_clock = None  # don't count validation or epoch switches as step time

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self(batch)
        trained = int(batch["num_trained_tokens"])
        # weight each batch by its trained tokens: val/loss is the token-level mean over held-out trajectories
        self.log("val/loss", loss, prog_bar=True, batch_size=max(trained, 1), sync_dist=True)
        return loss

    def _stop_if_not_finite(self, loss: torch.Tensor) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if self.trainer.strategy.reduce_boolean_decision(bad, all=False):
            where = getattr(self.trainer.checkpoint_callback, "dirpath", None)
            raise NonFiniteLossError(
                f"train/loss is not finite ({loss.item()}) at global step {self.global_step}, epoch {self.current_epoch}: "
                f"training stopped without saving this state; the last good checkpoint is kept"
                f"{f' in {where}' if where else ''}. Lower model.lr, check the data, or use bf16 instead of fp16."
            )

    # ----------------------------------------------------------------- optimizer
    def _offloads_optimizer(self) -> bool:
        strategy = self.trainer.strategy
        if not isinstance(strategy, DeepSpeedStrategy):
            return False
        zero = (strategy.config or {}).get("zero_optimization", {})
        offload = zero.get("offload_optimizer") or {}
        return offload.get("device", "none") not in ("none", None)

    def configure_optimizers(self) -> dict[str, Any]:
        from transformers import get_cosine_schedule_with_warmup

        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
        betas = tuple(self.hparams.betas)
        if self._offloads_optimizer():
            from deepspeed.ops.adam import DeepSpeedCPUAdam  # ZeRO offload steps on CPU with its own Adam

            optimizer = DeepSpeedCPUAdam(groups, lr=self.hparams.lr, betas=betas, adamw_mode=True)
        else:
            optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr, betas=betas)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = self.hparams.warmup
        warmup_steps = int(warmup) if warmup >= 1 else int(math.ceil(warmup * total))
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup_steps, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----------------------------------------------------------------- threads
    def setup(self, stage: str) -> None:
        """Atomic checkpoint writes; one OpenMP pool per process: split the cores between the processes."""

        use_atomic_checkpoints(self.trainer)
        if os.environ.get("OMP_NUM_THREADS") or self.trainer.strategy.root_device.type != "cpu":
            return
        procs = max(int(getattr(self.trainer, "num_devices", 1) or 1), 1)
        torch.set_num_threads(max((os.cpu_count() or 1) // procs, 1))

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.hparams.finetune == "lora" and "state_dict" in checkpoint:
            keep = self.trainable_state_keys()
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
        checkpoint["fireact"] = {
            "finetune": self.hparams.finetune,
            "trainable_only": self.hparams.finetune == "lora",
            "metrics": metrics,
        }
        style = self.prompt_style
        if style is not None:  # the format travels with the weights (export, eval, serve)
            checkpoint["fireact"]["prompt_style"] = style.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "state_dict" not in checkpoint or self.model is None:
            return  # DeepSpeed checkpoints are loaded by the engine
        missing = self.trainable_state_keys() - set(checkpoint["state_dict"])
        if missing:
            raise FireactError(
                f"checkpoint does not match model.model={self.hparams.model!r} finetune={self.hparams.finetune!r}: "
                f"{len(missing)} trainable weights missing (e.g. {sorted(missing)[0]})"
            )
