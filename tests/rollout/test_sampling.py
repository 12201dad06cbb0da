"""Sampled rollouts for on-policy training: G samples per question, seeded, and each episode's exact
token ids and log-probs, so the trainer never re-tokenizes what the model generated."""

from __future__ import annotations

import pytest
import torch

from fireact.agent.prompts import default_exemplar_pool, few_shot_prefix, pick_exemplars
from fireact.data.paths import snapshot_path
from fireact.data.prompt_style import PromptStyle, prompt_ids
from fireact.data.tasks import get_task, select
from fireact.data.token_log import TokenTurn, training_rows
from fireact.lm.hf import HFLM
from fireact.rollout.config import RolloutConfig
from fireact.rollout.runners import run_rollouts
from fireact.rollout.sampling import choose_tokens
from fireact.tools.snapshot import SnapshotSearch


def test_choose_tokens_greedy_top_p_and_seed():
    logits = torch.tensor([[0.0, 3.0, 1.0, -2.0], [2.0, 0.0, 0.0, 2.1]])
    g = torch.Generator().manual_seed(0)
    assert choose_tokens(logits, 0.0, 1.0, g, False) == ([1, 3], [0.0, 0.0])
    picks = {tuple(choose_tokens(logits, 1.0, 0.5, g, False)[0]) for _ in range(50)}
    assert picks <= {(1, 3), (1, 0)}  # the nucleus of row 0 is token 1 alone; of row 1, tokens 3 and 0
    a = choose_tokens(logits, 0.8, 1.0, torch.Generator().manual_seed(7), True)
    b = choose_tokens(logits, 0.8, 1.0, torch.Generator().manual_seed(7), True)
    assert a == b
    want = torch.log_softmax(logits / 0.8, -1).gather(-1, torch.tensor(a[0])[:, None])[:, 0]
    torch.testing.assert_close(torch.tensor(a[1]), want)


def test_training_rows_continue_or_restart():
    turns = [
        TokenTurn(0, [1, 2, 3], [4, 5], [-0.1, -0.2]),
        TokenTurn(5, [6, 7], [8], [-0.3]),  # the prompt keeps everything: one row goes on
        TokenTurn(7, [9], [10, 11], [-0.4, -0.5]),  # the prompt rewrote token 8: a new row
    ]
    first, second = training_rows(turns)
    assert first.input_ids.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert first.trained.tolist() == [False] * 3 + [True] * 2 + [False] * 2 + [True]
    assert first.logprobs[3:5].tolist() == pytest.approx([-0.1, -0.2]) and first.logprobs[7] == pytest.approx(-0.3)
    assert second.input_ids.tolist() == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]
    assert second.trained.tolist() == [False] * 8 + [True] * 2


@pytest.fixture(scope="module")
def sampled(smollm2_dir, data_dir):
    task = get_task("hotpotqa")
    examples = select(task.load(data_dir, "dev"), 5)[2:4]  # the 4th question takes two turns greedily
    tool = SnapshotSearch(snapshot_path(data_dir))
    pool = default_exemplar_pool(data_dir, task.name)
    cfg = RolloutConfig(
        few_shot=2, max_turns=3, temperature=0.3, samples=3, sampling_seed=11, record_tokens=True, batch_size=6
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lm = HFLM(smollm2_dir, dtype=torch.float32)
        runs = [run_rollouts(lm, tool, examples, cfg, pool) for _ in range(2)]
        other = run_rollouts(lm, tool, examples, RolloutConfig(**{**cfg.__dict__, "sampling_seed": 12}), pool)
    finally:
        torch.set_num_threads(threads)
    return {"lm": lm, "examples": examples, "runs": runs, "other": other, "pool": pool, "task": task}


def test_g_samples_per_question_seeded(sampled):
    first, again = sampled["runs"]
    ids = [e.id for e in sampled["examples"] for _ in range(3)]
    assert [t.id for t in first] == ids and [t.meta["sample"] for t in first] == [0, 1, 2] * 2
    assert [t.token_turns for t in first] == [t.token_turns for t in again]  # same seed
    assert [t.token_turns for t in first] != [t.token_turns for t in sampled["other"]]
    assert len({str(t.turns) for t in first}) > 2  # samples of one question differ


def test_token_log_is_what_the_model_saw_and_sampled(sampled):
    lm, task = sampled["lm"], sampled["task"]
    trajs = sampled["runs"][0]
    assert any(len(t.token_turns) > 1 for t in trajs)  # multi-turn episodes are covered
    shots = pick_exemplars(sampled["pool"], task.name, 2, 0, {e.question for e in sampled["examples"]}, "react")
    prefix = few_shot_prefix("react", shots, fmt="chat")
    for t in trajs:
        turns = t.token_turns
        assert turns[0].keep == 0
        assert turns[0].prompt == prompt_ids(PromptStyle("chat").prompt(t.question, [], prefix), lm.tokenizer)
        rows = training_rows(turns)
        assert sum(sum(r.trained) for r in rows) == sum(len(x.generated) for x in turns)
        for row in rows:
            ids = torch.from_numpy(row.input_ids)[None]
            with torch.no_grad():
                logits = lm.model(input_ids=ids).logits[0, :-1].float()
            logp = torch.log_softmax(logits / 0.3, -1).gather(-1, ids[0, 1:, None])[:, 0]
            trained = torch.from_numpy(row.trained[1:])
            torch.testing.assert_close(logp[trained], torch.from_numpy(row.logprobs[1:])[trained], atol=2e-3, rtol=0)
        fed = lm.tokenizer.decode([i for r in rows for i, m in zip(r.input_ids, r.trained) if not m])
        for turn in t.turns:  # the tool's observations sit in the untrained (fed) positions
            if turn.observation:
                assert f"Observation: {turn.observation}" in fed


def test_sft_on_the_sampled_react_episodes_trains_their_ids(sampled, tmp_path, data_dir):
    """Real SmolLM2 episodes with searches: the DataModule trains each on the ids the engine sampled
    and fed (observations fed, never trained), row for row; sampled with exemplars in the prompt, the
    same episodes train as the fine-tuned agent is prompted, zero-shot, from their rendered text."""
    from dataclasses import replace

    import numpy as np

    from fireact.data.encoding import encode
    from fireact.data.trajectory import write_trajectories
    from fireact.modules.datamodule import TrajectoryDataModule

    lm, trajs = sampled["lm"], sampled["runs"][0]
    assert {t.meta["few_shot"] for t in trajs} == {2}
    write_trajectories(tmp_path / "few_shot.jsonl", trajs)
    dm = TrajectoryDataModule(tokenizer=lm.tokenizer.name_or_path, sources=[str(tmp_path / "few_shot.jsonl")],
                              val_size=0, cutoff=8192, data_dir=str(data_dir))  # fmt: skip
    dm.setup("fit")
    rendered = encode([dm.trajectories[i] for i in dm.train_indices], lm.tokenizer, dm.prompt_style, 8192)
    assert [r.input_ids.tolist() for r in dm.train_set.rows] == [r.input_ids.tolist() for r in rendered]
    trajs = [replace(t, meta={**t.meta, "few_shot": 0}) for t in trajs]  # as if sampled zero-shot
    write_trajectories(tmp_path / "gen.jsonl", trajs)
    dm = TrajectoryDataModule(tokenizer=lm.tokenizer.name_or_path, sources=[str(tmp_path / "gen.jsonl")], val_size=0,
                              cutoff=8192, data_dir=str(data_dir))  # fmt: skip
    dm.setup("fit")
    want = [r for i in dm.train_indices for r in training_rows(dm.trajectories[i].token_turns)]
    assert len(dm.train_set.rows) == len(want) and any(t.turns[0].observation for t in trajs)
    for got, row in zip(dm.train_set.rows, want):
        assert np.array_equal(got.input_ids, row.input_ids) and np.array_equal(got.trained, row.trained)
