"""The renderer's invariant, checked on any trajectories: the inference prompt at turn k plus the
agent's turn-k text is the training text up to the end of trained span k (characters and token ids)."""

from __future__ import annotations

from fireact.data.prompt_style import PromptStyle, prompt_ids, prompt_text
from fireact.data.trajectory import Trajectory


def assert_prompts_are_training_prefixes(
    trajectories: list[Trajectory], tokenizer, fmt: str, protocol: str = "react"
) -> int:
    """For every turn k: prompt(k) + agent text(k) + closer == training text[:end of span k], and the
    prompt's token ids are the training ids up to the agent's first token. Returns turns checked."""
    style = PromptStyle(fmt, protocol=protocol)
    backend = tokenizer.backend_tokenizer
    checked = 0
    for traj in trajectories:
        text, spans = style.render(traj, tokenizer)
        full = backend.encode(text, add_special_tokens=style.add_special_tokens)
        turns = style.turns(traj)
        assert len(spans) == len(turns), traj.id
        for k, (turn, (start, end)) in enumerate(zip(turns, spans)):
            prompt = style.prompt(traj.question, turns[:k], tools=traj.tools, instructions=traj.instructions)
            before = prompt_text(prompt, tokenizer)
            assert before == text[:start], (traj.id, k)
            closer = text[start + len(style.step_text(turn)) : end]  # what ends the agent's turn
            assert before + style.step_text(turn) + closer == text[:end], (traj.id, k)
            assert closer in ("<|im_end|>", "\n", tokenizer.eos_token), (traj.id, k)
            ids = prompt_ids(prompt, tokenizer)
            assert full.ids[: len(ids)] == ids, (traj.id, k)
            assert full.char_to_token(start) == len(ids)  # the agent's first token follows the prompt's last
            checked += 1
    return checked
