"""GRPO's loss as pure functions, without a model or a trainer: rewards, advantages, micro-batches,
the clipped policy loss, its KL term and the teacher's (on-policy distillation)."""

from __future__ import annotations

import math

import pytest
import torch

from fireact.data.batching import pack_in_order
from fireact.data.rewards import episode_reward
from fireact.data.token_row import TokenRow
from fireact.data.trajectory import Trajectory, Turn
from fireact.modules.grpo_loss import (
    clipped_policy_loss,
    episode_metrics,
    equal_reward_groups,
    group_advantages,
    packed_tokens,
    teacher_policy_loss,
    token_budget_chunks,
)


def test_group_advantages_are_relative_to_the_own_group():
    adv = group_advantages([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.5], ["a", "a", "b", "b", "c", "c", "d"])
    assert adv[0] == pytest.approx(1.0, abs=1e-3) and adv[1] == pytest.approx(-1.0, abs=1e-3)
    assert adv[2:] == [0.0, 0.0, 0.0, 0.0, 0.0]  # all-equal groups (and a group of one) carry no signal
    mixed = group_advantages([1.0, 0.0, 0.0, 0.0], ["q"] * 4)
    assert sum(mixed) == pytest.approx(0.0, abs=1e-9) and mixed[0] > 0 > mixed[1]


def test_equal_reward_groups_are_those_with_no_advantage():
    rewards, groups = (
        [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.5, 0.2, 0.2, 0.3],
        ["a", "a", "b", "b", "c", "c", "d", "e", "e", "e"],
    )
    dead = equal_reward_groups(rewards, groups)
    assert dead == {"b", "c", "d"}  # all equal, or a group of one
    assert dead == {g for g, a in zip(groups, group_advantages(rewards, groups)) if a == 0.0}


def test_episode_reward_em_f1_and_format_penalty():
    done = Trajectory("Q", "a b", "hotpotqa", "react", [Turn("t", "finish[a]")], "a", 0.0, 0.67)
    broken = Trajectory("Q", "a", "hotpotqa", "react", [Turn("t", "search[x]", "o")], None, end_reason="max_turns")
    assert episode_reward(done, "em", 0.5) == 0.0 and episode_reward(done, "f1", 0.5) == pytest.approx(0.67)
    assert episode_reward(broken, "em", 0.5) == -0.5


def test_seen_bonus_pays_for_retrieving_the_gold_not_for_a_yes_no_answer():
    seen = Trajectory("Q", "Paris", "hotpotqa", "react",
                      [Turn("t", "search[x]", "It lies in Paris."), Turn("t", "finish[Lyon]")], "Lyon", 0.0, 0.0)  # fmt: skip
    missed = Trajectory("Q", "Paris", "hotpotqa", "react", [Turn("t", "search[x]", "Lyon."), Turn("t", "finish[Lyon]")],
                        "Lyon", 0.0, 0.0)  # fmt: skip
    yes = Trajectory("Q", "yes", "hotpotqa", "react", [Turn("t", "search[x]", "yes it is"), Turn("t", "finish[no]")],
                     "no", 0.0, 0.0)  # fmt: skip
    assert episode_reward(seen, "em", 0.5, seen_bonus=0.25) == 0.25
    assert episode_reward(missed, "em", 0.5, seen_bonus=0.25) == 0.0
    assert episode_reward(yes, "em", 0.5, seen_bonus=0.25) == 0.0  # "yes" in an observation is no retrieval
    assert group_advantages([episode_reward(t, "f1", 0.5, 0.25) for t in (seen, missed)], ["q", "q"])[0] > 0
    rewards, groups = [0.25, 0.0, 0.0], ["q", "q", "y"]
    m = episode_metrics([seen, missed, yes], rewards, groups)
    assert m["gold_seen"] == pytest.approx(1 / 3) and m["zero_advantage_groups"] == 0.5  # y: one sample, no gradient
    assert (m["em"], m["format_error_rate"], m["reward_mean"]) == (0.0, 0.0, pytest.approx(0.25 / 3))


def test_loss_micro_batches_stay_within_the_token_budget():
    """A row cap let 8 full episodes (~24k tokens, 30+ GB of activations) into one backward: OOM."""
    lengths = [3000, 10, 900, 1000, 5000, 950, 20, 30]
    rows = [TokenRow([1] * n, [True] * n, [0.0] * n) for n in lengths]
    chunks = token_budget_chunks(rows, 2048)
    assert sorted(i for c in chunks for i in c) == list(range(len(rows)))  # every row once
    for c in chunks:
        assert packed_tokens([lengths[i] for i in c]) <= 2048 or len(c) == 1  # a row over the budget goes alone
    assert chunks == [[4], [0], [3, 5], [2, 7, 6, 1]]  # longest first: 5000, 3000, 1000|950, 900|30+20+10
    assert pack_in_order([900, 30, 20, 10], 900) == [[0], [1, 2, 3]] and packed_tokens([900, 30, 20, 10]) == 1800


def test_clipped_policy_loss_by_hand():
    """Ratios 0.5, 1 and 2 with eps 0.2: a positive advantage takes min(r, clip(r)) (capped at 1.2), a
    negative one max (floored at 0.8); the KL term is k3 = e^(ref-new) - (ref-new) - 1."""
    old = torch.zeros(3)
    new = torch.log(torch.tensor([0.5, 1.0, 2.0]))
    adv = torch.tensor([1.0, -1.0, 1.0])
    per_token, stats = clipped_policy_loss(new, old, adv, 0.2)
    torch.testing.assert_close(per_token, torch.tensor([-0.5, 1.0, -1.2]))
    assert stats == {"clipped": 2.0, "ratio": pytest.approx(3.5)} and "kl" not in stats
    per_token, stats = clipped_policy_loss(new, old, -adv, 0.2)
    torch.testing.assert_close(per_token, torch.tensor([0.8, -1.0, 2.0]))  # r=2, A<0: the unclipped 2 wins
    plain, _ = clipped_policy_loss(new, old, adv, 0.2)
    with_kl, stats = clipped_policy_loss(new, old, adv, 0.2, reference=torch.zeros(3), kl_coef=0.1)
    k3 = [math.exp(-x) + x - 1 for x in new.tolist()]  # reference log-prob 0 against each new one
    torch.testing.assert_close(with_kl - plain, 0.1 * torch.tensor(k3))
    assert stats["kl"] == pytest.approx(sum(k3))


def test_clipped_policy_loss_gradient_is_zero_outside_the_trust_region():
    """A clipped token (ratio 2 > 1.2 with a positive advantage) gives no gradient; an unclipped one does."""
    new = torch.log(torch.tensor([2.0, 1.0])).requires_grad_()
    per_token, _ = clipped_policy_loss(new, torch.zeros(2), torch.tensor([1.0, 1.0]), 0.2)
    per_token.sum().backward()
    assert new.grad.tolist() == [0.0, -1.0]


def test_truncated_importance_weights_correct_a_server_trainer_mismatch():
    """Server rollouts: the policy loss is weighted by min(pi_trainer / pi_server, cap), the KL term is
    not, and the mismatch is summed for logging; equal log-probs leave the loss as it was."""
    new = old = torch.log(torch.tensor([0.5, 0.5, 0.5]))
    adv = torch.tensor([1.0, 1.0, -1.0])
    plain, _ = clipped_policy_loss(new, old, adv, 0.2)
    same, stats = clipped_policy_loss(new, old, adv, 0.2, behaviour=old.clone())
    torch.testing.assert_close(same, plain)
    assert stats["mismatch"] == 0.0 and stats["tis_capped"] == 0.0
    server = old + torch.log(torch.tensor([2.0, 0.8, 0.1]))  # the server: 2x, 0.8x and 0.1x the trainer's prob
    weighted, stats = clipped_policy_loss(new, old, adv, 0.2, torch.zeros(3), 0.1, behaviour=server, tis_cap=2.0)
    kl = clipped_policy_loss(new, old, adv, 0.2, torch.zeros(3), 0.1)[0] - plain
    torch.testing.assert_close(weighted - kl, plain * torch.tensor([0.5, 1.25, 2.0]))  # 1/0.1 = 10, capped at 2
    assert stats["tis_capped"] == 1.0 and stats["mismatch"] == pytest.approx(
        math.log(2) + math.log(1.25) + math.log(10)
    )


def test_teacher_policy_loss_by_hand():
    """On-policy (new == old, ratio 1): the loss is -(advantage + coef x (teacher - old)) on tokens under
    the teacher, -advantage elsewhere; its gradient is the loss itself (d ratio / d new = 1)."""
    old = torch.log(torch.tensor([0.5, 0.25, 0.5, 0.8]))
    teacher = torch.log(torch.tensor([0.9, 0.05, 0.5, 0.1]))
    adv = torch.tensor([0.0, 0.0, 1.0, -1.0])
    under = torch.tensor([True, True, True, False])
    new = old.clone().requires_grad_(True)
    per_token, stats = teacher_policy_loss(new, old, teacher, adv, under, clip_eps=0.2, distill_coef=0.5)
    expected = -(adv + 0.5 * torch.tensor([math.log(0.9 / 0.5), math.log(0.05 / 0.25), 0.0, 0.0]))
    torch.testing.assert_close(per_token.detach(), expected)
    per_token.sum().backward()
    torch.testing.assert_close(new.grad, expected)  # the student's log-prob of a token the teacher prefers rises
    assert stats["teacher_tokens"] == 3
    assert stats["teacher_kl"] == pytest.approx(math.log(0.5 / 0.9) + math.log(0.25 / 0.05) + 0.0)


def test_teacher_policy_loss_with_nothing_under_the_teacher_is_the_policy_loss():
    new = torch.tensor([0.1, -0.3, 0.4], requires_grad=True)
    old, adv = torch.zeros(3), torch.tensor([1.0, -2.0, 0.5])
    plain, _ = clipped_policy_loss(new, old, adv, 0.2)
    with_teacher, stats = teacher_policy_loss(new, old, torch.full((3,), -9.0), adv, torch.zeros(3, dtype=torch.bool), 0.2)
    torch.testing.assert_close(with_teacher, plain)
    assert stats["teacher_tokens"] == 0 and stats["teacher_kl"] == 0


def test_teacher_policy_loss_descends_the_reverse_kl():
    """Gradient steps on the loss, re-sampling the student each step, bring a 3-token student to its
    teacher: the reverse KL falls by more than 90%."""
    g = torch.Generator().manual_seed(0)
    logits = torch.zeros(3, requires_grad=True)
    teacher = torch.log(torch.tensor([0.7, 0.2, 0.1]))
    opt = torch.optim.SGD([logits], lr=0.5)

    def kl() -> float:
        p = torch.softmax(logits.detach(), -1)
        return float((p * (p.log() - teacher)).sum())

    start = kl()
    for _ in range(300):
        logp = torch.log_softmax(logits, -1)
        x = torch.multinomial(logp.exp().detach(), 16, replacement=True, generator=g)
        new = logp[x]
        per_token, _ = teacher_policy_loss(new, new.detach(), teacher[x], torch.zeros(16), torch.ones(16, dtype=torch.bool), 0.2)
        opt.zero_grad()
        per_token.mean().backward()
        opt.step()
    assert kl() < 0.1 * start
