"""A teacher that scores the student's tokens: its log-prob of each token given the same prefix.

On-policy distillation needs no teacher generation, only the teacher's view of the sequences the
student sampled. A teacher is one of three things, named by one string (`teacher_kind`):
- a LoRA adapter folder on the student's own base: loaded beside the trained adapter, so no second
  model is held (the trainer switches adapters; `GRPOLM` does this itself);
- an HF model (name or folder) with the student's tokenizer: `HFTeacher`, frozen, in eval mode;
- an OpenAI-compatible server (`http://...`) that returns prompt log-probs for given token ids, as
  vLLM's `/v1/completions` does with `prompt_logprobs` (and `fireact serve`): `ServerTeacher`.
Token ids go to the teacher as the student sampled them, never re-tokenized, which is why the
tokenizers must be the same (checked for the two teachers that bring their own).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from fireact.errors import FireactError
from fireact.lm.models import load_tokenizer, resolve_model
from fireact.lm.token_servers import api_root
from fireact.rollout.sampling import sampling_logprobs

TeacherKind = Literal["adapter", "model", "server"]


def teacher_kind(spec: str) -> TeacherKind:
    """What a `teacher` string names: a server URL, an adapter folder, or an HF model."""
    if spec.startswith(("http://", "https://")):
        return "server"
    return "adapter" if (Path(spec) / "adapter_config.json").is_file() else "model"


def check_same_vocab(student: Any, teacher: Any, where: str) -> None:
    """The teacher scores the student's token ids as they are: both tokenizers must map ids alike."""
    if student.get_vocab() != teacher.get_vocab():
        raise FireactError(f"{where}: the teacher's tokenizer differs from the student's (on-policy distillation "
                           "scores the student's token ids as they are; use a teacher of the same tokenizer)")  # fmt: skip


class HFTeacher:
    """A frozen HF causal LM that scores token sequences in micro-batches of `micro_batch_tokens`."""

    def __init__(self, path: str, student_tokenizer: Any, micro_batch_tokens: int = 4096) -> None:
        from transformers import AutoModelForCausalLM

        try:
            check_same_vocab(student_tokenizer, load_tokenizer(resolve_model(path)), f"model.teacher={path!r}")
            self.model = AutoModelForCausalLM.from_pretrained(resolve_model(path), dtype=torch.get_default_dtype())
        except (OSError, ValueError) as e:
            raise FireactError(f"model.teacher: cannot load {path!r}: {e}") from e
        self.model.eval().requires_grad_(False)
        self.pad_id = student_tokenizer.pad_token_id or 0
        self.micro_batch_tokens = micro_batch_tokens

    def to(self, device: torch.device) -> HFTeacher:
        self.model.to(device)
        return self

    @torch.no_grad()
    def logprobs(self, sequences: list[list[int]]) -> list[np.ndarray]:
        """log p_teacher(x_t | x_<t) for t = 1 .. n-1 of each sequence (right-padded batches)."""
        device = next(self.model.parameters()).device
        out: list[np.ndarray | None] = [None] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        while order:
            width = len(sequences[order[0]])
            chunk = order[: max(1, self.micro_batch_tokens // max(width, 1))]
            order = order[len(chunk) :]
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(chunk):
                ids[r, : len(sequences[i])] = torch.tensor(sequences[i])
                mask[r, : len(sequences[i])] = 1
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1]
            lp = sampling_logprobs(logits, 1.0).gather(-1, ids[:, 1:, None].to(device))[..., 0].cpu().numpy()
            for r, i in enumerate(chunk):
                out[i] = lp[r, : len(sequences[i]) - 1]
        return out  # type: ignore[return-value]


class ServerTeacher:
    """A teacher behind an OpenAI-compatible server: one `/v1/completions` request per sequence with
    the ids as the prompt, `max_tokens` 1 and `prompt_logprobs` 0 (vLLM's surface), `concurrency`
    requests at a time, through the openai client and its retries. The key, if any, comes from
    $FIREACT_TEACHER_API_KEY."""

    def __init__(self, base_url: str, model: str | None = None, concurrency: int = 8, timeout: float = 600.0,
                 max_retries: int = 3) -> None:  # fmt: skip
        from openai import OpenAI

        self.client = OpenAI(base_url=api_root(base_url),
                             api_key=os.environ.get("FIREACT_TEACHER_API_KEY") or "none", timeout=timeout,
                             max_retries=max_retries)  # fmt: skip
        self.base_url, self.concurrency = base_url, concurrency
        self.model = model or self._served_model()

    def _served_model(self) -> str:
        try:
            return self.client.models.list().data[0].id
        except Exception as e:  # noqa: BLE001 - any failure to reach it is the same message
            raise FireactError(f"model.teacher: cannot list the models of {self.base_url}: {type(e).__name__}: {e}") from e

    def _one(self, ids: list[int]) -> np.ndarray:
        try:
            r = self.client.completions.create(model=self.model, prompt=ids, max_tokens=1, temperature=0.0,
                                               extra_body={"prompt_logprobs": 0})  # fmt: skip
        except Exception as e:  # noqa: BLE001 - after the client's own retries
            raise FireactError(f"teacher server {self.base_url}: {type(e).__name__}: {e}") from e
        scores = (r.choices[0].model_extra or {}).get("prompt_logprobs")
        if not isinstance(scores, list) or len(scores) != len(ids):
            raise FireactError(f"teacher server {self.base_url} did not return prompt_logprobs for the {len(ids)} "
                               "prompt tokens (vLLM and fireact serve do, given prompt_logprobs: 0)")  # fmt: skip
        return np.array([float(scores[t][str(ids[t])]["logprob"]) for t in range(1, len(ids))], dtype=np.float32)

    def logprobs(self, sequences: list[list[int]]) -> list[np.ndarray]:
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="fireact-teacher") as pool:
            return list(pool.map(self._one, sequences))
