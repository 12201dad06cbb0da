"""The one sampling rule: which token a row takes, and the log-prob it is recorded (and trained) with.

The rollout engine samples with `choose_tokens`; GRPO recomputes the same `sampling_logprobs` on the
trained tokens, so the policy ratio of an on-policy step is 1 up to float noise.
"""

from __future__ import annotations

import torch


def sampling_logprobs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """fp32 log-probs of the distribution a token is drawn from: softmax(logits / T), or of the
    logits as they are at T = 0 (greedy)."""
    logits = logits.float()
    return torch.log_softmax(logits / temperature if temperature > 0 else logits, dim=-1)


def choose_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator, with_logprobs: bool
) -> tuple[list[int], list[float]]:
    """Greedy (temperature 0) or seeded sampling at `temperature` from the top-p nucleus. The
    log-probs (when asked, else 0.0) are of the chosen tokens under the temperature-scaled full
    distribution: what the trainer recomputes for the policy ratio."""
    if temperature <= 0:
        nxt = logits.argmax(dim=-1)
        logp = sampling_logprobs(logits, temperature) if with_logprobs else None
    else:
        logp = sampling_logprobs(logits, temperature)
        probs = logp.exp()
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            sorted_p = sorted_p * ((sorted_p.cumsum(dim=-1) - sorted_p) < top_p)  # keeps at least the top one
            nxt = order.gather(-1, torch.multinomial(sorted_p, 1, generator=generator))[:, 0]
        else:
            nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]
    if logp is None:
        return nxt.tolist(), [0.0] * len(nxt)
    return nxt.tolist(), logp.gather(-1, nxt[:, None])[:, 0].tolist()
