"""The continuous-batching engine: slot KV (reuse, rollback, prefix copy) == a plain full forward;
rollouts through it == one-at-a-time HF generate, greedy, fp32."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from fireact.agent.prompts import default_exemplar_pool
from fireact.data.paths import snapshot_path
from fireact.data.tasks import get_task, select
from fireact.lm.hf import HFLM
from fireact.rollout.config import RolloutConfig
from fireact.rollout.engine import ContinuousBatcher, SlotCache, _Slot
from fireact.rollout.runners import run_rollouts
from fireact.tools.snapshot import SnapshotSearch


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return HFLM(tiny_model_dir, dtype=torch.float32, batch_size=4)


def _plain_last_logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1]


def test_slot_kv_reuse_rollback_and_prefix_copy_match_full_forward(tiny):
    g = torch.Generator().manual_seed(0)
    shared = torch.randint(5, 2000, (40,), generator=g).tolist()
    a = shared + torch.randint(5, 2000, (9,), generator=g).tolist()
    b = shared + torch.randint(5, 2000, (3,), generator=g).tolist()
    eng = ContinuousBatcher(tiny, slots=3, min_shared_prefix=8)
    s0, s1, s2 = _Slot(0), _Slot(1), _Slot(2)
    for s, ids in ((s0, a), (s1, b)):
        eng._start_turn(s, ids)
    eng._share_prefixes([s0, s1])  # shared prefix run once on one row, copied to the other
    assert s0.stored == shared or s1.stored == shared
    logits = eng._forward([s0, s1])
    for row, ids in ((0, a), (1, b)):
        torch.testing.assert_close(logits[row], _plain_last_logits(tiny.model, ids), atol=1e-4, rtol=1e-4)
    # decode one token on a subset of rows, then roll slot 0 back into its prompt and branch off
    s1.feed = [7]
    torch.testing.assert_close(eng._forward([s1])[0], _plain_last_logits(tiny.model, b + [7]), atol=1e-4, rtol=1e-4)
    branch = a[:45] + [11, 12, 13]
    eng._start_turn(s0, branch)
    assert s0.stored == a[:45] and s0.feed == [11, 12, 13]
    eng._start_turn(s2, b + [7, 8])  # an empty row: whole prompt
    logits = eng._forward([s0, s2])
    torch.testing.assert_close(logits[0], _plain_last_logits(tiny.model, branch), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[1], _plain_last_logits(tiny.model, b + [7, 8]), atol=1e-4, rtol=1e-4)


def test_capacity_grows_without_losing_rows(tiny):
    eng = ContinuousBatcher(tiny, slots=2)
    eng.cache.state.capacity = 16
    s = _Slot(1)
    ids = list(range(5, 30))
    eng._start_turn(s, ids[:10])
    eng._forward([s])
    s.feed = ids[10:]
    logits = eng._forward([s])
    assert eng.cache.state.capacity == SlotCache.GRAIN  # grown to what the context needs, not doubled
    torch.testing.assert_close(logits[0], _plain_last_logits(tiny.model, ids), atol=1e-4, rtol=1e-4)


def test_tiny_rollouts_continuous_equal_one_at_a_time(tiny, tiny_model_dir, data_dir):
    task = get_task("hotpotqa")
    examples = select(task.load(data_dir, "dev"), 6)
    tool = SnapshotSearch(snapshot_path(data_dir))
    pool = default_exemplar_pool(data_dir, task.name)
    cfg = RolloutConfig(few_shot=1, max_turns=3, max_tokens=24)
    fast = run_rollouts(tiny, tool, examples, replace(cfg, batch_size=4), pool)
    ref_lm = HFLM(tiny_model_dir, dtype=torch.float32, batch_size=1, prefix_cache=False, continuous=False)
    ref = run_rollouts(ref_lm, tool, examples, replace(cfg, batch_size=1), pool)
    assert [t.id for t in fast] == [e.id for e in examples]
    for x, y in zip(fast, ref):
        assert [(t.thought, t.action, t.observation) for t in x.turns] == [
            (t.thought, t.action, t.observation) for t in y.turns
        ]
        assert (x.prediction, x.end_reason) == (y.prediction, y.end_reason)
        assert x.meta["completion_tokens"] == y.meta["completion_tokens"]


def test_draft_and_verify_is_lossless(tiny, data_dir, monkeypatch):
    """Greedy drafts (prompt lookup) verified in one forward give the very tokens and log-probs of
    one-token steps, and some drafts are kept (a random tiny model repeats itself)."""
    from fireact.rollout import engine

    made: list[ContinuousBatcher] = []
    init = ContinuousBatcher.__init__
    monkeypatch.setattr(
        ContinuousBatcher, "__init__", lambda self, *a, **k: (init(self, *a, **k), made.append(self))[0]
    )
    assert engine._lookup_draft([1, 2, 3, 9, 1, 2, 3, 7, 5, 1, 2, 3], 3) == [7, 5, 1]  # the latest occurrence
    assert engine._lookup_draft([4, 5, 6], 3) == []
    task = get_task("hotpotqa")
    examples = select(task.load(data_dir, "dev"), 6)
    tool = SnapshotSearch(snapshot_path(data_dir))
    # 5 slots for 6 questions: the tiny model always writes max_tokens, so the 6th episode decodes alone
    cfg = RolloutConfig(few_shot=1, max_turns=3, max_tokens=24, batch_size=5, record_tokens=True)
    pool = default_exemplar_pool(data_dir, task.name)
    runs = {}
    for draft in (0, 6):
        monkeypatch.setattr(tiny, "draft_tokens", draft)
        runs[draft] = run_rollouts(tiny, tool, examples, cfg, pool)
    assert made[0].drafts["proposed"] == 0 and made[1].drafts["accepted"] > 0
    monkeypatch.setattr(engine, "_lookup_draft", lambda context, k: [])  # drafting on, nothing to draft
    assert [t.turns for t in run_rollouts(tiny, tool, examples, cfg, pool)] == [t.turns for t in runs[0]]
    for x, y in zip(runs[0], runs[6]):
        assert [(t.thought, t.action, t.observation) for t in x.turns] == [
            (t.thought, t.action, t.observation) for t in y.turns
        ]
        turns_x, turns_y = x.token_turns, y.token_turns
        assert [(t.keep, t.prompt, t.generated) for t in turns_x] == [(t.keep, t.prompt, t.generated) for t in turns_y]
        for a, b in zip(turns_x, turns_y):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


@pytest.mark.slow
def test_real_smollm2_few_shot_multi_turn_equal_one_at_a_time(smollm2_dir, data_dir):
    task = get_task("hotpotqa")
    examples = select(task.load(data_dir, "dev"), 5)[:4]  # the 4th takes two turns and waits for a free slot
    tool = SnapshotSearch(snapshot_path(data_dir))
    pool = default_exemplar_pool(data_dir, task.name)
    cfg = RolloutConfig(few_shot=2, max_turns=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy 2-core box 2 threads make small decode steps ~30x slower
    try:
        fast = run_rollouts(HFLM(smollm2_dir, dtype=torch.float32), tool, examples, replace(cfg, batch_size=3), pool)
        ref_lm = HFLM(smollm2_dir, dtype=torch.float32, batch_size=1, prefix_cache=False, continuous=False)
        ref = run_rollouts(ref_lm, tool, examples, replace(cfg, batch_size=1), pool)
    finally:
        torch.set_num_threads(threads)
    assert any(len(t.turns) > 1 for t in ref)  # KV reuse across turns is exercised
    assert [[t.action for t in x.turns] for x in fast] == [[t.action for t in y.turns] for y in ref]
    assert [x.prediction for x in fast] == [y.prediction for y in ref]


class _SlowSearch:
    """The snapshot behind a fixed latency, like a live search; counts the engine's forwards it overlaps."""

    def __init__(self, tool, latency: float, blocking_io: bool, forwards: list[int]):
        self.tool, self.latency, self.blocking_io, self.forwards = tool, latency, blocking_io, forwards
        self.name = "slow-snapshot"
        self.overlapped: list[int] = []  # forwards run by other slots while this call waited

    def __call__(self, query: str) -> str:
        import time

        before = self.forwards[0]
        time.sleep(self.latency)
        self.overlapped.append(self.forwards[0] - before)
        return self.tool(query)


@pytest.mark.slow
def test_blocking_tool_calls_run_off_the_decode_path(smollm2_dir, data_dir, monkeypatch):
    """A slow network tool stalls only its own slot: the others keep decoding meanwhile, and every
    episode is the same as with the tool called inline. (SmolLM2 few-shot: it does search.)"""
    task = get_task("hotpotqa")
    examples = select(task.load(data_dir, "dev"), 4)
    snapshot = SnapshotSearch(snapshot_path(data_dir))
    forwards = [0]
    forward = ContinuousBatcher._forward

    def counting(self, slots, keep=None):
        forwards[0] += 1
        return forward(self, slots, keep)

    monkeypatch.setattr(ContinuousBatcher, "_forward", counting)
    cfg = RolloutConfig(few_shot=2, max_turns=2, max_tokens=64, batch_size=4)
    pool = default_exemplar_pool(data_dir, task.name)
    lm = HFLM(smollm2_dir, dtype=torch.float32)
    runs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for blocking in (False, True):
            tool = _SlowSearch(snapshot, 0.3, blocking, forwards)
            runs[blocking] = (run_rollouts(lm, tool, examples, cfg, pool), tool.overlapped)
    finally:
        torch.set_num_threads(threads)
    (inline, inline_overlap), (offloaded, overlap) = runs[False], runs[True]
    assert overlap and inline_overlap and max(inline_overlap) == 0  # inline: the whole batch waits
    assert max(overlap) > 0  # off the decode path: other slots decoded during a search
    assert [[(t.thought, t.action, t.observation) for t in x.turns] for x in offloaded] == [
        [(t.thought, t.action, t.observation) for t in x.turns] for x in inline
    ]
    assert [(x.prediction, x.end_reason) for x in offloaded] == [(x.prediction, x.end_reason) for x in inline]
