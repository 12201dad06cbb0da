"""Tiny models that call a tool: the random tiny model never writes a parseable call, so its episodes
would have no tool results. A few full-weight steps on "prompt -> a call" teach it the call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CALL = '<tool_call>\n{"name": "search", "arguments": {"query": "Ibsen"}}\n</tool_call>'


def teach(model: Any, tok: Any, prompts: list[str], reply: str, max_steps: int = 300) -> None:
    """Adam steps on (prompt -> reply) until the reply is every prompt's greedy continuation by a
    margin (mean loss under 0.01: batched decoding's rounding must not flip a token). The LM head runs
    at the reply's positions only (5x faster than over the whole prompt) and prompts of one length go
    through as one batch (1.6x); lr 5e-3 got there in ~105 steps, 1e-2 in ~160-210, 3e-2 never."""
    import torch

    groups: dict[tuple[int, int], list] = {}  # (prompt length, total length) -> rows of equal length
    for p in prompts:
        n = len(tok(p, add_special_tokens=False)["input_ids"])
        ids = tok(p + reply, add_special_tokens=False)["input_ids"]
        groups.setdefault((n, len(ids)), []).append(ids)
    batches = [(n, torch.tensor(rows)) for (n, _), rows in groups.items()]
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(max_steps):
        optimizer.zero_grad()
        right, loss = 0, 0.0
        for n, ids in batches:
            logits = model(input_ids=ids, logits_to_keep=ids.shape[1] - n + 1).logits[:, :-1]
            batch_loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, n:].flatten())
            (batch_loss * len(ids) / len(prompts)).backward()  # the mean over prompts
            right += int((logits.argmax(-1) == ids[:, n:]).all(-1).sum())
            loss += batch_loss.item() * len(ids) / len(prompts)
        if right == len(prompts) and loss < 0.01:
            model.eval()
            return
        optimizer.step()
    raise RuntimeError(f"the model did not learn its reply in {max_steps} steps")


def make_caller_model(tiny_model_dir: str, out: Path, questions: list[str], templates: list[str | None]) -> str:
    """The tiny model answering each question's first prompt with a search call, in the Hermes
    rendering (template None) and the given tools templates; saved to `out`."""
    import torch
    from transformers import AutoModelForCausalLM

    from fireact.data.prompt_style import PromptStyle, prompt_text
    from fireact.lm.models import load_tokenizer

    style = PromptStyle("chat", protocol="tool-calls")
    prompts = []
    for template in templates:
        tok = load_tokenizer(tiny_model_dir)
        tok.chat_template = template or tok.chat_template
        prompts += [prompt_text(style.prompt(q, []), tok) for q in questions]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    teach(model, load_tokenizer(tiny_model_dir), prompts, CALL)
    model.save_pretrained(out)
    load_tokenizer(tiny_model_dir).save_pretrained(out)
    return str(out)
