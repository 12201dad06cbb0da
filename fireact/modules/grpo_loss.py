"""GRPO's reward, advantages and clipped policy loss as pure functions: tested without a trainer.

`GRPOLM` (fireact.modules.grpo) plays the episodes and computes log-probs; everything that turns
them into a loss lives here.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from fireact.data.batching import pack_in_order
from fireact.data.evaluation import gold_seen
from fireact.data.token_row import TokenRow
from fireact.data.trajectory import Trajectory


def episode_metrics(trajs: list[Trajectory], rewards: list[float], groups: list[str]) -> dict:
    """What a step's episodes earned: reward mean and std, EM, F1, gold-seen and format-error rates,
    and the share of groups whose equal rewards left them no gradient."""
    r = torch.tensor(rewards)
    n = len(trajs)
    return {"reward_mean": float(r.mean()), "reward_std": float(r.std(unbiased=False)),
            "em": sum(t.em for t in trajs) / n, "f1": sum(t.f1 for t in trajs) / n,
            "gold_seen": sum(gold_seen(t) for t in trajs) / n,
            "format_error_rate": sum(not t.finished for t in trajs) / n,
            "zero_advantage_groups": len(equal_reward_groups(rewards, groups)) / len(set(groups))}  # fmt: skip


def equal_reward_groups(rewards: list[float], groups: list[str]) -> set[str]:
    """The groups whose rewards are all equal (a group of one included): their advantages are all 0,
    so they give no gradient (DAPO's dynamic sampling replaces them)."""
    seen: dict[str, set[float]] = defaultdict(set)
    for r, g in zip(rewards, groups):
        seen[g].add(r)
    return {g for g, rs in seen.items() if len(rs) == 1}


def group_advantages(rewards: list[float], groups: list[str], eps: float = 1e-4) -> list[float]:
    """(r - mean of its group) / (std of its group + eps); 0 for a group whose rewards are all equal."""
    members: dict[str, list[float]] = defaultdict(list)
    for r, g in zip(rewards, groups):
        members[g].append(r)
    stats = {}
    for g, rs in members.items():
        t = torch.tensor(rs, dtype=torch.float64)
        stats[g] = (float(t.mean()), float(t.std(unbiased=False)) if len(rs) > 1 else 0.0)
    return [0.0 if stats[g][1] == 0 else (r - stats[g][0]) / (stats[g][1] + eps) for r, g in zip(rewards, groups)]


def token_budget_chunks(rows: list[TokenRow], budget: int) -> list[list[int]]:
    """Row indices in micro-batches of at most `budget` tokens once packed (`pack_in_order`, rows as
    long as the micro-batch's longest), longest first; a row longer than the budget goes alone.
    Packing instead of padding: episodes of one step differ in length by several times (a format
    error ends one at its first turn), and padded to the longest, most of a step's compute is pads."""
    chunks: list[list[int]] = []
    for i in sorted(range(len(rows)), key=lambda i: -len(rows[i])):
        chunk = chunks[-1] if chunks else None
        if chunk and packed_tokens([len(rows[j]) for j in [*chunk, i]]) <= budget:
            chunk.append(i)
        else:
            chunks.append([i])
    return chunks


def packed_tokens(lengths: list[int]) -> int:
    """The tokens `lengths` take packed in order into rows as long as the longest of them."""
    width = max(lengths)
    return len(pack_in_order(lengths, width)) * width


def clipped_policy_loss(
    new: torch.Tensor,
    old: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
    reference: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    behaviour: torch.Tensor | None = None,
    tis_cap: float = 2.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token PPO-clip loss of trained tokens (log-probs now, as sampled, and under the reference
    policy; one advantage per token), plus `kl_coef` x the k3 KL estimate (unbiased and >= 0) when a
    reference is given. Returns (per-token loss, sums of loss-free statistics for logging).

    `behaviour`: the log-probs an inference server sampled with, when they are not the trainer's own
    (`old` then is the trainer's log-prob under the weights that were sampled with): the policy loss
    is weighted by the truncated importance ratio min(exp(old - behaviour), tis_cap), which corrects
    for the two engines' numerics (vLLM and HF differ in kernels and precision)."""
    ratio = torch.exp(new - old)
    per_token = -torch.minimum(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)
    stats = {
        "clipped": float(((ratio.detach() - 1).abs() > clip_eps).sum()),
        "ratio": float(ratio.detach().sum()),
    }
    if behaviour is not None:
        gap = (old - behaviour).detach()
        weight = torch.exp(gap).clamp(max=tis_cap)
        per_token = per_token * weight
        stats |= {"mismatch": float(gap.abs().sum()), "tis_capped": float((weight >= tis_cap).sum()),
                  "mismatch_kl": float((torch.exp(-gap) + gap - 1).sum())}  # fmt: skip
    if reference is not None:
        kl = torch.exp(reference - new) - (reference - new) - 1
        per_token = per_token + kl_coef * kl
        stats["kl"] = float(kl.detach().sum())
    return per_token, stats


def teacher_policy_loss(
    new: torch.Tensor,
    old: torch.Tensor,
    teacher: torch.Tensor,
    advantages: torch.Tensor,
    under_teacher: torch.Tensor,
    clip_eps: float,
    distill_coef: float = 1.0,
    behaviour: torch.Tensor | None = None,
    tis_cap: float = 2.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """On-policy distillation as a per-token advantage, folded into the clipped policy loss.

    The student sampled each token; the teacher scored it (`teacher`: its log-prob of that token given
    the same prefix). Per-token reverse KL to the teacher, KL(student || teacher) = E[log pi_s - log pi_t],
    is minimised by the policy gradient whose per-token reward is log pi_t(x) - log pi_s(x) (discount 0:
    each token answers for itself), so on the tokens `under_teacher` (bool) the advantage becomes
    `advantages` + distill_coef x (teacher - old), detached. `advantages` 0 and every token under the
    teacher is pure on-policy distillation; the reward's group advantages with only the reward-failed
    episodes' tokens under the teacher is DGPO's selective form. Returns (per-token loss, sums for
    logging: `teacher_kl` (the k1 estimate, log pi_s - log pi_t), `teacher_tokens`, and the policy
    loss's own)."""
    under = under_teacher.to(old.dtype)
    gap = (teacher - old).detach() * under
    per_token, stats = clipped_policy_loss(new, old, advantages + distill_coef * gap, clip_eps,
                                           behaviour=behaviour, tis_cap=tis_cap)  # fmt: skip
    stats |= {"teacher_kl": float(-gap.sum()), "teacher_tokens": float(under.sum())}
    return per_token, stats
