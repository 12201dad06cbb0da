"""A local transformers model as an LM: batched generate, or the continuous-batching engine."""

from __future__ import annotations

import os
from typing import Any

from fireact.data.prompt_style import PromptStyle, prompt_ids
from fireact.errors import FireactError
from fireact.lm.base import Completion, step_complete, truncate_at_stop
from fireact.lm.models import load_tokenizer, resolve_model


def default_dtype():
    """bf16 where the CPU computes it natively (AVX512-BF16/AMX), else fp32; bf16 on CUDA."""
    import torch

    if torch.cuda.is_available():
        return torch.bfloat16
    cap = torch.backends.cpu.get_cpu_capability().upper()
    return torch.bfloat16 if ("AMX" in cap or "BF16" in cap) else torch.float32


class _StopCriteria:
    """Per-sequence stop: a stop string or (optionally) the end of the first Action line."""

    def __init__(self, tokenizer, prompt_len: int, stop: list[str], after_action: bool, batch: int):
        self.tok, self.prompt_len, self.stop, self.after_action = tokenizer, prompt_len, stop, after_action
        self.done = [False] * batch

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        for i in range(input_ids.shape[0]):
            if not self.done[i]:
                text = self.tok.decode(input_ids[i, self.prompt_len :], skip_special_tokens=True)
                self.done[i] = step_complete(text, self.stop, self.after_action)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


class HFLM:
    """A local transformers causal LM (optionally + a peft adapter), or an already loaded one.

    A folder exported by `fireact export` carries its `PromptStyle` (format and base model): it is
    read into `prompt_style`, and an adapter folder is loaded on top of that base model.
    """

    batched = True
    concurrency = 1
    returns_tokens = False  # its tokens are recorded by the rollout engine (continuous), not by `complete`

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        adapter: str | None = None,
        dtype: Any = None,
        batch_size: int = 8,
        name: str | None = None,
        threads: int | None = None,
        prefix_cache: bool = True,
        min_prefix: int = 64,
        continuous: bool = True,
        prompt_style: PromptStyle | None = None,
        draft_tokens: int = 8,
    ):
        import torch

        self.prefix_cache, self.min_prefix = prefix_cache, min_prefix
        self.continuous = continuous  # run_rollouts uses the continuous-batching engine (engine.py)
        self.draft_tokens = draft_tokens  # engine: greedy drafts verified per step when few rows are left (0: off)
        self._prefix_key: tuple[int, ...] | None = None
        self._prefix_kv: Any = None
        self.prompt_style = prompt_style

        if threads:
            torch.set_num_threads(threads)
        self.batch_size = max(1, batch_size)
        if isinstance(model, str | os.PathLike):
            self.name = name or f"hf:{model}"
            self.model, self.tokenizer, saved = _load(str(model), tokenizer, adapter, dtype or default_dtype())
            self.prompt_style = prompt_style or saved
        else:  # given in memory (e.g. during training): used as is, never moved or cast
            if tokenizer is None:
                raise FireactError("HFLM given a model object needs its tokenizer too")
            self.model, self.tokenizer = model, tokenizer
            self.name = name or "hf:in-memory"
        self.cache_kwarg = cache_kwarg(self.model)  # the engine uses it too
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        self.eos_ids = gen_eos if gen_eos is not None else self.tokenizer.eos_token_id

    def reset_cache(self) -> None:
        self._prefix_key, self._prefix_kv = None, None

    def complete(self, prompts, stop, max_tokens, temperature=0.0, stop_after_action=False) -> list[Completion]:
        out: list[Completion] = []
        for i in range(0, len(prompts), self.batch_size):
            out += self._generate(prompts[i : i + self.batch_size], stop, max_tokens, temperature, stop_after_action)
        return out

    def _generate(self, prompts, stop, max_tokens, temperature, after_action) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        ids = [prompt_ids(p, self.tokenizer) for p in prompts]
        device = next(self.model.parameters()).device
        enc, cache = self._inputs_with_prefix_cache(ids, device) if self.prefix_cache else (None, None)
        if enc is None:
            width = max(len(x) for x in ids)
            rows = [[self.pad_id] * (width - len(x)) + x for x in ids]
            masks = [[0] * (width - len(x)) + [1] * len(x) for x in ids]
            enc = {"input_ids": torch.tensor(rows, device=device), "attention_mask": torch.tensor(masks, device=device)}
        prompt_len = enc["input_ids"].shape[1]
        sample = temperature > 0
        config = GenerationConfig(
            max_new_tokens=max_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=None,
            top_k=None,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids,
            use_cache=True,
        )
        criteria = _StopCriteria(self.tokenizer, prompt_len, stop, after_action, len(ids))
        with torch.no_grad():
            extra = {self.cache_kwarg: cache} if cache is not None else {}
            seqs = self.model.generate(
                **enc, **extra, generation_config=config, stopping_criteria=StoppingCriteriaList([criteria])
            )
        results = []
        for row, prompt in zip(seqs, ids):
            new = row[prompt_len:]
            n_new = _count_generated(new.tolist(), self.pad_id, self.eos_ids)
            text = self.tokenizer.decode(new[:n_new], skip_special_tokens=True)
            results.append(Completion(truncate_at_stop(text, stop, after_action), len(prompt), n_new))
        return results

    def _inputs_with_prefix_cache(self, ids: list[list[int]], device) -> tuple[dict | None, Any]:
        """Prefill the prompts' shared token prefix (few-shot exemplars, chat header) once and reuse
        its KV cache across rows and calls; rows are laid out [prefix][padding][own suffix].

        Greedy output is unchanged (the attention mask hides the padding, positions come from the
        mask); the prefill it saves dominates CPU time with few-shot prompts. Returns (None, None)
        when there is no prefix worth caching.
        """
        import copy

        import torch

        shortest = min(len(x) for x in ids)
        common = 0
        while common < shortest - 1 and all(x[common] == ids[0][common] for x in ids):
            common += 1
        key = self._prefix_key
        if key is not None and len(key) <= common and tuple(ids[0][: len(key)]) == key:
            common = len(key)  # the cached prefix still applies: reuse it
        elif common < self.min_prefix:
            return None, None
        else:
            try:
                from transformers import DynamicCache

                cache = DynamicCache(config=self.model.config)
                prefix = torch.tensor([ids[0][:common]], device=device)
                with torch.no_grad():
                    self.model(input_ids=prefix, use_cache=True, **{self.cache_kwarg: cache})
            except Exception:  # a model whose cache cannot be built this way: plain prefill
                self.prefix_cache = False
                return None, None
            self._prefix_key, self._prefix_kv = tuple(ids[0][:common]), cache
        width = max(len(x) for x in ids) - common
        rows, masks = [], []
        for x in ids:
            pad = width - (len(x) - common)
            rows.append(list(self._prefix_key) + [self.pad_id] * pad + x[common:])
            masks.append([1] * common + [0] * pad + [1] * (len(x) - common))
        cache = copy.deepcopy(self._prefix_kv)
        cache.batch_repeat_interleave(len(ids))
        enc = {"input_ids": torch.tensor(rows, device=device), "attention_mask": torch.tensor(masks, device=device)}
        return enc, cache


def _load(spec: str, tokenizer: Any, adapter: str | None, dtype: Any) -> tuple[Any, Any, PromptStyle | None]:
    """(model in eval mode, tokenizer, saved prompt style) of a name, model folder or exported adapter."""
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    if adapter and not Path(adapter).is_dir():
        raise FireactError(
            f"--adapter {adapter}: no such folder (an exported adapter: `fireact export --ckpt ... --out DIR`)"
        )
    if looks_local(spec) and not Path(spec).expanduser().exists():
        raise FireactError(f"--lm hf:{spec}: no such folder (a model or adapter folder, a hub id, or smollm2-135m)")
    path = resolve_model(spec)
    saved = [PromptStyle.load(d) for d in (path, adapter) if d and Path(d).is_dir()]
    style = next((s for s in saved if s is not None), None)
    is_adapter = (Path(path) / "adapter_config.json").is_file()
    base = resolve_model(style.base_model) if is_adapter and style and style.base_model else path
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except (OSError, ValueError) as e:
        raise FireactError(f"cannot load model {spec!r}: {str(e).splitlines()[0]}") from None
    from peft import PeftModel

    for extra in ([path] if base != path else []) + ([adapter] if adapter else []):
        model = PeftModel.from_pretrained(model, extra)
    return model.eval(), tokenizer or load_tokenizer(path), style


def looks_local(spec: str) -> bool:
    """A path, not a hub id (`org/name`): it starts like one, or has more than one slash."""
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1


def cache_kwarg(model: Any) -> str:
    """The name forward/generate take the KV cache under: transformers 5.24 renamed
    `past_key_values` to `cache` (the old name warns and is removed in 5.40)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps forward as **kwargs
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _count_generated(ids: list[int], pad_id: int | None, eos: int | list[int] | None) -> int:
    """Tokens actually generated: up to and including the first EOS, before trailing padding."""
    eos_set = set(eos if isinstance(eos, list) else [eos]) - {None}
    for i, t in enumerate(ids):
        if t in eos_set:
            return i + 1
    n = len(ids)
    while n and ids[n - 1] == pad_id:
        n -= 1
    return n
