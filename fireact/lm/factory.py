"""`openai:MODEL` or `hf:PATH` -> a backend."""

from __future__ import annotations

from typing import Any

from fireact.errors import FireactError
from fireact.lm.base import LM
from fireact.lm.hf import HFLM
from fireact.lm.openai import OpenAILM


def make_lm(spec: str, **kw: Any) -> LM:
    """`openai:MODEL` or `hf:PATH_OR_NAME` (e.g. hf:smollm2-135m) -> a backend."""
    kind, _, target = spec.partition(":")
    if not target:
        raise FireactError(f"--lm {spec!r}: expected openai:MODEL or hf:PATH_OR_NAME")
    if kind == "openai":
        keys = ("base_url", "concurrency", "requests_per_minute", "max_retries", "timeout")
        return OpenAILM(target, **{k: v for k, v in kw.items() if k in keys and v is not None})
    if kind == "hf":
        keys = ("adapter", "batch_size", "dtype", "threads", "prefix_cache", "continuous")
        return HFLM(target, **{k: v for k, v in kw.items() if k in keys and v is not None}, name=spec)
    raise FireactError(f"--lm {spec!r}: unknown backend {kind!r}; use openai:MODEL or hf:PATH_OR_NAME")
