"""One renderer: the inference prompt at turn k plus the agent's turn-k text is the training text up to
the end of trained span k, in characters and in token ids, on every real FireAct trajectory."""

from __future__ import annotations

import pytest
from prefix_check import assert_prompts_are_training_prefixes

from fireact.data.fireact_format import read_any
from fireact.data.prompt_style import PromptStyle, prompt_text
from fireact.data.trajectory import Trajectory, Turn
from fireact.errors import FireactError


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from fireact.lm.models import load_tokenizer

    return load_tokenizer(smollm2_dir)


@pytest.fixture(scope="module")
def multitask(data_dir) -> list[Trajectory]:
    records = read_any(data_dir / "finetune" / "gpt_format" / "multitask_multimethod.jsonl")
    assert len(records) == 2063
    return [r for r in records if r.turns]


@pytest.mark.parametrize("fmt,protocol", [("chat", "react"), ("alpaca", "react"), ("chat", "tool-calls")])
def test_prompts_are_training_prefixes_on_the_test_assets(tokenizer, assets, fmt, protocol):
    trajs = read_any(assets / "fireact_gpt.jsonl") + read_any(assets / "fireact_alpaca.json")
    assert assert_prompts_are_training_prefixes(trajs, tokenizer, fmt, protocol) == 14


@pytest.mark.parametrize("fmt,protocol", [("chat", "react"), ("alpaca", "react"), ("chat", "tool-calls")])
def test_prompts_are_training_prefixes_on_all_fireact_trajectories(tokenizer, multitask, fmt, protocol):
    checked = assert_prompts_are_training_prefixes(multitask, tokenizer, fmt, protocol)
    assert checked > 2 * len(multitask)  # multi-turn trajectories were compared turn by turn


def test_prompt_formats(tokenizer):
    turns = [Turn("t1", "search[a]", "o1")]
    chat = PromptStyle("chat").prompt("Q?", turns, pending_user_note="Reflect.")
    assert chat[-1] == {"role": "user", "content": "Observation: o1\nReflect."}
    alpaca = PromptStyle("alpaca").prompt("Q?", turns)
    assert alpaca.endswith("### Response:\nThought: t1\nAction: search[a]\nObservation: o1\n")
    # a chat request to `fireact serve` for an alpaca model is written as the alpaca prompt of the episode
    messages = PromptStyle("chat").prompt("Q?", turns)
    assert PromptStyle("alpaca").from_messages(messages) == alpaca
    assert PromptStyle("chat").from_messages(messages) == messages
    with pytest.raises(FireactError, match="unknown prompt format 'sharegpt'"):
        PromptStyle("sharegpt")


def test_style_round_trips_through_a_folder(tmp_path):
    style = PromptStyle("alpaca", base_model="smollm2-135m")
    style.save(tmp_path)
    assert PromptStyle.load(tmp_path) == style
    assert PromptStyle.load(tmp_path / "nothing-here") is None
    (tmp_path / "fireact_prompt_style.json").write_text('{"format": "alpaca", "colour": 1}')
    with pytest.raises(FireactError, match="unknown key"):
        PromptStyle.load(tmp_path)


def test_chat_needs_a_template(tokenizer):
    import copy

    bare = copy.copy(tokenizer)
    bare.chat_template = None
    traj = Trajectory("Q?", "a", "hotpotqa", "react", [Turn("t", "finish[a]")])
    for call in (
        lambda: PromptStyle("chat").render(traj, bare),
        lambda: prompt_text([{"role": "user", "content": "Q?"}], bare),
    ):
        with pytest.raises(FireactError, match="no chat template"):
            call()
