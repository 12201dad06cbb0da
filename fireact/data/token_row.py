"""The one row that crosses from data or rollout to a loss, for SFT and RL alike.

SFT rows come from rendering a record (`fireact.data.encoding.encode`); RL rows from the exact tokens
a rollout sampled (`fireact.data.token_log.training_rows`). Both are batched by the same `collate`
(`fireact.data.batching`) and meet the model through the same "logits at trained positions".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = -100  # the label of a position that carries no loss (HF's convention)


@dataclass(eq=False)
class TokenRow:
    input_ids: np.ndarray  # int64 token ids
    trained: np.ndarray  # bool loss mask: True at the agent's own tokens, False at prompts and observations
    logprobs: np.ndarray | None = None  # RL: the sampling policy's log-prob of each token (0 where untrained)
    group: str = ""  # RL: the question (task/id) its episode answers, the group its advantage is relative to
    cut: int = 0  # SFT: tokens cut off the end at the length cutoff

    def __post_init__(self) -> None:
        self.input_ids = np.asarray(self.input_ids, dtype=np.int64)
        self.trained = np.asarray(self.trained, dtype=bool)
        if self.logprobs is not None:
            self.logprobs = np.asarray(self.logprobs, dtype=np.float32)
        if self.trained.shape != self.input_ids.shape:
            raise ValueError(f"loss mask of {self.trained.shape} for {self.input_ids.shape} tokens")

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def labels(self) -> np.ndarray:
        """The ids where trained, IGNORE_INDEX elsewhere: the targets of HF's causal-LM loss."""
        return np.where(self.trained, self.input_ids, IGNORE_INDEX)

    @property
    def truncated(self) -> bool:
        return self.cut > 0

    @property
    def num_trained(self) -> int:
        """Trained tokens the loss sees: a row's first token is never a target (nothing predicts it)."""
        return int(self.trained[1:].sum())
