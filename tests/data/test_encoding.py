"""The loss is on the agent's thoughts/actions (+ the token closing them) and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from fireact.data.encoding import encode, token_mask
from fireact.data.fireact_format import read_any
from fireact.data.prompt_style import PromptStyle, trained_text, training_turns
from fireact.data.react_grammar import agent_text, observation_text
from fireact.data.token_row import IGNORE_INDEX
from fireact.data.trajectory import Trajectory, Turn


def render(traj: Trajectory, tokenizer, fmt: str):
    return PromptStyle(fmt).render(traj, tokenizer)


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="module")
def multitask(data_dir) -> list[Trajectory]:
    records = read_any(data_dir / "finetune" / "gpt_format" / "multitask_multimethod.jsonl")
    assert len(records) == 2063
    return [r for r in records if r.turns]


def expected_trained(traj: Trajectory, fmt: str, eos: str) -> str:
    """What the label tokens must decode to, written independently of the span bookkeeping."""
    turns = training_turns(traj)
    if fmt == "chat":
        return "".join(agent_text(t) + "<|im_end|>" for t in turns)
    return "".join(agent_text(t) + ("\n" if i < len(turns) - 1 else eos) for i, t in enumerate(turns))


@pytest.mark.parametrize("fmt", ["chat", "alpaca"])
def test_label_tokens_decode_to_thoughts_and_actions(tokenizer, multitask, fmt):
    encoded = encode(multitask, tokenizer, PromptStyle(fmt))
    assert len(encoded) == len(multitask) == 2061
    for traj, enc in zip(multitask, encoded):
        text, spans = render(traj, tokenizer, fmt)
        trained_ids = enc.labels[enc.labels != IGNORE_INDEX].tolist()
        decoded = tokenizer.decode(trained_ids)
        assert decoded == trained_text(text, spans) == expected_trained(traj, fmt, tokenizer.eos_token), traj.id
        # labels are the input ids where trained, never shifted or altered
        assert all(lab in (IGNORE_INDEX, tok) for lab, tok in zip(enc.labels, enc.input_ids))
        # the first token is never a target: packed after another example it would be predicted from that
        # one, and collate's num_trained_tokens would not be the shifted loss's target count
        assert enc.labels[0] == IGNORE_INDEX
        masked = tokenizer.decode(enc.input_ids[enc.labels == IGNORE_INDEX].tolist())
        assert traj.question.split("\n")[0][:40] in masked
        assert "Observation" not in decoded and "<|im_start|>" not in decoded and "### " not in decoded
        assert "Episode finished" not in text
        # no trained span overlaps the question or any observation where they sit in the text
        cursor, blocked = 0, [(text.find(traj.question), len(traj.question))]
        for turn in training_turns(traj):
            if turn.observation is not None:
                at = text.find(observation_text(turn.observation), cursor)
                assert at >= 0
                blocked.append((at, len(observation_text(turn.observation))))
                cursor = at + 1
        for at, n in blocked:
            assert at >= 0 and all(b <= at or a >= at + n for a, b in spans)


def test_reward_line_dropped_even_if_present(tokenizer):
    traj = Trajectory(
        question="Who?",
        answer="A",
        task="hotpotqa",
        method="react",
        turns=[
            Turn("I search.", "search[who]", "A is who."),
            Turn("Found it.", "finish[A]", "Episode finished, reward = True"),
        ],
    )
    for fmt in ("chat", "alpaca"):
        text, _ = render(traj, tokenizer, fmt)
        assert "Episode finished" not in text and "reward" not in text
        assert "Observation: A is who." in text


TWO_TURNS = Trajectory("Q?", "x", "hotpotqa", "react", [Turn("t1", "search[a]", "o1"), Turn("t2", "finish[x]")])


def test_chat_render_is_the_gpt_format_conversation(tokenizer):
    traj = TWO_TURNS
    text, spans = render(traj, tokenizer, "chat")
    expected = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "Q?"},
            {"role": "assistant", "content": "Thought: t1\nAction: search[a]"},
            {"role": "user", "content": "Observation: o1"},
            {"role": "assistant", "content": "Thought: t2\nAction: finish[x]"},
        ],
        tokenize=False,
    )
    assert text == expected
    assert [text[a:b] for a, b in spans] == [
        "Thought: t1\nAction: search[a]<|im_end|>",
        "Thought: t2\nAction: finish[x]<|im_end|>",
    ]
    assert render(traj, tokenizer, "chat") == (text, spans)  # pure


def test_alpaca_render(tokenizer):
    traj = TWO_TURNS
    text, spans = render(traj, tokenizer, "alpaca")
    assert text == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nQ?\n\n### Response:\n"
        "Thought: t1\nAction: search[a]\nObservation: o1\nThought: t2\nAction: finish[x]<|im_end|>"
    )
    assert [text[a:b] for a, b in spans] == [
        "Thought: t1\nAction: search[a]\n",
        "Thought: t2\nAction: finish[x]<|im_end|>",
    ]


def test_token_mask_never_trains_a_token_that_straddles_a_span_edge():
    spans = [(5, 10), (20, 30)]
    offsets = np.array([[0, 5], [5, 8], [8, 11], [11, 20], [20, 30], [30, 31], [0, 0], [29, 30]])
    assert token_mask(offsets, spans).tolist() == [False, True, False, False, True, False, False, True]


def test_truncation_is_counted(tokenizer, multitask):
    sample = multitask[:300]
    full = encode(sample, tokenizer, PromptStyle("chat"))
    cut = encode(sample, tokenizer, PromptStyle("chat"), cutoff=128)
    over = [len(e) > 128 for e in full]
    assert any(over) and not all(over)
    assert [e.truncated for e in cut] == over
    for f, c in zip(full, cut):
        assert np.array_equal(c.input_ids, f.input_ids[:128]) and np.array_equal(c.labels, f.labels[:128])
        assert c.cut == len(f) - 128 if c.truncated else c.cut == 0


def test_io_turn_without_thought_renders_the_action_only(tokenizer):
    traj = Trajectory(question="Q?", answer="x", task="hotpotqa", method="io", turns=[Turn("", "finish[x]")])
    for fmt in ("chat", "alpaca"):
        text, spans = render(traj, tokenizer, fmt)
        assert "Thought" not in text and trained_text(text, spans).startswith("Action: finish[x]")
