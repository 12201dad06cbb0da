"""SFT on generated episodes trains the ids the rollout engine sampled, with their masks, never a
re-tokenization of the decoded text (which differs: byte pieces of multi-byte characters decode to
U+FFFD, and text re-encodes to other token boundaries), with the Hermes rendering and with a template
that renders tools itself; a tool result that merges with the template's text around it when
tokenized is trained as the model was fed it, not as its pieces tokenize alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from caller_model import make_caller_model
from tool_templates import QWEN_STYLE, with_template

from fireact.data.encoding import encode
from fireact.data.synthetic import write_world
from fireact.data.token_log import training_rows
from fireact.data.trajectory import read_trajectories, write_trajectories
from fireact.lm.hf import HFLM
from fireact.modules.datamodule import TrajectoryDataModule
from fireact.rollout.config import RolloutConfig
from fireact.rollout.runners import run_rollouts


@pytest.mark.parametrize("template", [None, QWEN_STYLE], ids=["hermes", "native"])
def test_tool_call_episodes_train_on_their_sampled_ids(tiny_model_dir, tmp_path, template):
    model = with_template(tiny_model_dir, tmp_path / "model", template) if template else tiny_model_dir
    world = write_world(tmp_path / "world", n_people=20, n_dev=6)
    cfg = RolloutConfig(tasks=["synthetic"], split="dev", protocol="tool-calls", temperature=1.0, top_p=1.0,
                        sampling_seed=3, record_tokens=True, max_tokens=24, batch_size=6)  # fmt: skip
    lm = HFLM(model, dtype=torch.float32)
    records, dm = generate_and_load(lm, cfg.make_tool(world), cfg, world, model, tmp_path)
    # why: the decoded text is not the sampled ids, and renders to other ids
    generated = [i for t in records for turn in t.token_turns for i in turn.generated]
    assert any("\ufffd" in lm.tokenizer.decode([i]) for i in generated)  # byte pieces of multi-byte characters
    rendered = encode(records, lm.tokenizer, dm.prompt_style, 4096)
    sampled_ids = [training_rows(t.token_turns)[0].input_ids for t in records]
    assert any(not np.array_equal(r.input_ids, s) for r, s in zip(rendered, sampled_ids))
    assert ("# Tools" in lm.tokenizer.decode(dm.train_set.rows[0].input_ids)) == (template is not None)


@pytest.fixture(scope="module")
def caller(tiny_model_dir, tmp_path_factory) -> tuple[str, Path, RolloutConfig]:
    """(a tiny model that calls the tool on the world's dev questions, the world, the rollout config)."""
    world = write_world(tmp_path_factory.mktemp("world"), n_people=20, n_dev=4)
    cfg = RolloutConfig(tasks=["synthetic"], split="dev", protocol="tool-calls", max_turns=2, record_tokens=True,
                        max_tokens=40, batch_size=4)  # fmt: skip
    questions = [e.question for e in cfg.all_examples(world)]
    model = make_caller_model(tiny_model_dir, tmp_path_factory.mktemp("caller"), questions, [None, QWEN_STYLE])
    return model, world, cfg


@pytest.mark.parametrize("template", [None, QWEN_STYLE], ids=["hermes", "native"])
def test_a_tool_result_that_merges_when_tokenized_is_trained_as_the_model_was_fed_it(caller, tmp_path, template):
    caller_dir, world, cfg = caller
    model = with_template(caller_dir, tmp_path / "model", template) if template else caller_dir
    lm = HFLM(model, dtype=torch.float32)
    search = cfg.make_tool(world)

    def padded(query: str) -> str:  # leading newlines merge with the template's "\n" before the result
        return "\n\n" + search(query) + " déjà vu"

    padded.name = search.name
    records, dm = generate_and_load(lm, padded, cfg, world, model, tmp_path)
    tok, head = lm.tokenizer, "<tool_response>\n"
    results = [turn.observation for t in records for turn in t.turns if turn.observation]
    assert len(results) >= len(records)  # every episode called the tool
    obs = results[0]
    assert obs.startswith("\n\n") and obs.endswith(" déjà vu")  # kept as the tool gave it
    alone = tok.encode(head, add_special_tokens=False) + tok.encode(obs, add_special_tokens=False)
    fed = tok.encode(head + obs, add_special_tokens=False)
    assert fed != alone  # tokenized in its place, the result's first newlines merge with the template's
    rows = [list(r.input_ids) for r in dm.train_set.rows]
    assert any(contains(r, fed) for r in rows) and not any(contains(r, alone) for r in rows)


def generate_and_load(lm, tool, cfg, world, model, tmp_path) -> tuple[list, TrajectoryDataModule]:
    """Episodes generated with recorded tokens, then loaded for SFT: its rows are the sampled rows."""
    trajs = run_rollouts(lm, tool, cfg.all_examples(world), cfg)
    write_trajectories(tmp_path / "gen.jsonl", trajs)
    dm = TrajectoryDataModule(tokenizer=model, sources=[str(tmp_path / "gen.jsonl")], protocol="tool-calls",
                              val_size=0, cutoff=4096, batch_size=2, data_dir=str(world))  # fmt: skip
    dm.setup("fit")
    records = read_trajectories(tmp_path / "gen.jsonl")
    want = [r for i in dm.train_indices for r in training_rows(dm.trajectories[i].token_turns)]
    assert len(dm.train_set.rows) == len(want) >= len(records)
    for got, sampled in zip(dm.train_set.rows, want):
        assert np.array_equal(got.input_ids, sampled.input_ids) and np.array_equal(got.trained, sampled.trained)
    return records, dm


def contains(ids: list[int], part: list[int]) -> bool:
    return any(ids[i : i + len(part)] == part for i in range(len(ids) - len(part) + 1))
