"""A tiny model that calls the search tool: the random tiny model never writes a parseable call, so
episodes would have no tool results. A few full-weight steps on "prompt -> a search call" (in the
Hermes rendering and a tools template's) teach it to answer the given questions with one."""

from __future__ import annotations

from pathlib import Path

CALL = '<tool_call>\n{"name": "search", "arguments": {"query": "Ibsen"}}\n</tool_call>'


def make_caller_model(
    tiny_model_dir: str, out: Path, questions: list[str], templates: list[str | None], steps: int = 300
) -> str:
    import torch
    from transformers import AutoModelForCausalLM

    from fireact.data.prompt_style import PromptStyle, prompt_text
    from fireact.lm.models import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    style = PromptStyle("chat", protocol="tool-calls")
    rows = []
    for template in templates:
        tok.chat_template = template or load_tokenizer(tiny_model_dir).chat_template
        tok._fireact_renders_calls = None
        for q in questions:
            prompt = tok.encode(prompt_text(style.prompt(q, []), tok), add_special_tokens=False)
            rows.append((prompt, tok.encode(CALL, add_special_tokens=False)))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        right = 0
        for prompt, call in rows:  # the logits of the call's positions only (the vocabulary is large)
            hidden = model.model(input_ids=torch.tensor([prompt + call])).last_hidden_state[0, len(prompt) - 1 : -1]
            logits = model.lm_head(hidden)
            torch.nn.functional.cross_entropy(logits, torch.tensor(call)).backward()
            right += logits.argmax(-1).tolist() == call
        if right == len(rows):  # every call is the greedy continuation of its prompt
            break
        opt.step()
        opt.zero_grad()
    else:
        raise RuntimeError(f"the caller model did not learn its call in {steps} steps")
    model.save_pretrained(out)
    load_tokenizer(tiny_model_dir).save_pretrained(out)
    return str(out)
