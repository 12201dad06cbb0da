"""SFT on generated episodes trains the ids the rollout engine sampled, with their masks, never a
re-tokenization of the decoded text (which differs: byte pieces of multi-byte characters decode to
U+FFFD, and text re-encodes to other token boundaries)."""

from __future__ import annotations

import numpy as np
import torch

from fireact.data.encoding import encode
from fireact.data.synthetic import write_world
from fireact.data.token_log import training_rows
from fireact.data.trajectory import read_trajectories, write_trajectories
from fireact.lm.hf import HFLM
from fireact.modules.datamodule import TrajectoryDataModule
from fireact.rollout.config import RolloutConfig
from fireact.rollout.runners import run_rollouts


def test_tool_call_episodes_train_on_their_sampled_ids(tiny_model_dir, tmp_path):
    world = write_world(tmp_path / "world", n_people=20, n_dev=6)
    cfg = RolloutConfig(tasks=["synthetic"], split="dev", protocol="tool-calls", temperature=1.0, top_p=1.0,
                        sampling_seed=3, record_tokens=True, max_tokens=24, batch_size=6)  # fmt: skip
    lm = HFLM(tiny_model_dir, dtype=torch.float32)
    trajs = run_rollouts(lm, cfg.make_tool(world), cfg.all_examples(world), cfg)
    write_trajectories(tmp_path / "gen.jsonl", trajs)
    dm = TrajectoryDataModule(tokenizer=tiny_model_dir, sources=[str(tmp_path / "gen.jsonl")], protocol="tool-calls",
                              val_size=0, cutoff=4096, batch_size=2, data_dir=str(world))  # fmt: skip
    dm.setup("fit")
    records = read_trajectories(tmp_path / "gen.jsonl")
    want = [r for i in dm.train_indices for r in training_rows(dm.trajectories[i].token_turns)]
    assert len(dm.train_set.rows) == len(want) >= len(records)
    for got, sampled in zip(dm.train_set.rows, want):
        assert np.array_equal(got.input_ids, sampled.input_ids) and np.array_equal(got.trained, sampled.trained)
    # why: the decoded text is not the sampled ids, and renders to other ids
    generated = [i for t in records for turn in t.token_turns for i in turn.generated]
    assert any("\ufffd" in lm.tokenizer.decode([i]) for i in generated)  # byte pieces of multi-byte characters
    rendered = encode(records, lm.tokenizer, dm.prompt_style, 4096)
    sampled_ids = [training_rows(t.token_turns)[0].input_ids for t in records]
    assert any(not np.array_equal(r.input_ids, s) for r, s in zip(rendered, sampled_ids))
