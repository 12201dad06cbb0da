"""A prompt longer than the model's context (a 1 MB question in a user's file) ends its own episode with
an error naming the sizes, before any forward pass; the other episodes of the batch play on."""

from __future__ import annotations

import torch

from fireact.data.tasks import Example
from fireact.lm.hf import HFLM
from fireact.rollout.config import RolloutConfig
from fireact.rollout.runners import run_rollouts


class Echo:
    name = "echo"

    def __call__(self, query: str) -> str:
        return f"About {query}."


def test_a_prompt_over_the_context_ends_its_episode_and_the_batch_goes_on(tiny_model_dir):
    lm = HFLM(tiny_model_dir, dtype=torch.float32, batch_size=3)  # max_position_embeddings 2048
    examples = [Example("short", "Who wrote Hamlet?", "Shakespeare", "hotpotqa"),
                Example("huge", "word " * 200_000, "x", "hotpotqa"),
                Example("short2", "Who wrote Faust?", "Goethe", "hotpotqa")]  # fmt: skip
    trajs = run_rollouts(lm, Echo(), examples, RolloutConfig(max_turns=2, max_tokens=8, batch_size=3))
    by_id = {t.id: t for t in trajs}
    huge = by_id["huge"]
    assert huge.end_reason == "error" and "over the model's context of 2,048" in huge.meta["error"]
    assert all(by_id[i].end_reason != "error" for i in ("short", "short2"))
