"""A chat template that renders `tools=` itself renders the tool-call protocol its own way (its system
prompt, its turn layout), for training and inference alike; one whose calls fireact cannot read back
keeps the Hermes rendering."""

from __future__ import annotations

import json

import pytest
from prefix_check import assert_prompts_are_training_prefixes
from tool_templates import LLAMA_STYLE, QWEN_STYLE, THINKING_LAST

from fireact.data import tool_calls
from fireact.data.fireact_format import read_any
from fireact.data.prompt_style import PromptStyle, prompt_text, trained_text
from fireact.data.trajectory import Trajectory, Turn

STYLE = PromptStyle("chat", protocol="tool-calls")
EPISODE = Trajectory("Who wrote Peer Gynt?", "Henrik Ibsen", "hotpotqa", "react", [
    Turn("I should search it.", "search[Peer Gynt]", "Peer Gynt: a play by Henrik Ibsen."),
    Turn("", "search[Ibsen]", "Henrik Ibsen: a playwright."),
    Turn("So the answer is Henrik Ibsen.", "finish[Henrik Ibsen]", None),
])  # fmt: skip


_SCHEMA = {
    "type": "object",
    "properties": {"table": {"type": "string"}, "row": {"type": "integer"}},
    "required": ["table"],
}
ANY_TOOLS = Trajectory("What is in row 2?", "b", "table", "react", [  # an environment's tools: 2 arguments, then none
    Turn("Read it.", 'read[{"table": "t", "row": 2}]', "b", "read", {"table": "t", "row": 2}),
    Turn("Time?", "clock[]", "12:00", "clock", {}),
    Turn("So b.", "finish[b]", None),
], "b", 1.0, 1.0, id="q1", instructions="Read tables.", tools=[
    {"type": "function", "function": {"name": "read", "description": "Read a row.", "parameters": _SCHEMA}},
    {"type": "function", "function": {"name": "clock", "description": "The time.", "parameters": {"type": "object", "properties": {}}}},
    tool_calls.FINISH,
])  # fmt: skip


def load(smollm2_dir: str, template: str | None):
    from fireact.lm.models import load_tokenizer

    tok = load_tokenizer(smollm2_dir)
    if template is not None:
        tok.chat_template = template
    return tok


def test_only_a_template_whose_calls_read_back_renders_tools_itself(smollm2_dir):
    assert not tool_calls.renders_calls(load(smollm2_dir, None))  # SmolLM2's ChatML has no tools
    assert not tool_calls.renders_calls(load(smollm2_dir, LLAMA_STYLE))  # bare JSON calls: not parsed
    assert not tool_calls.renders_calls(load(smollm2_dir, THINKING_LAST))  # history renders otherwise
    assert tool_calls.renders_calls(load(smollm2_dir, QWEN_STYLE))


def test_native_rendering_uses_the_templates_own_prompt_and_trains_the_assistant_turns(smollm2_dir):
    tok = load(smollm2_dir, QWEN_STYLE)
    text, spans = STYLE.render(EPISODE, tok)
    assert "# Tools" in text and tool_calls.HERMES_HEAD not in text  # the template's system prompt
    assert json.dumps(tool_calls.TOOLS[0], ensure_ascii=False) in text  # the tools, as the template lists them
    assert "<|im_start|>user\n<tool_response>\nPeer Gynt: a play by Henrik Ibsen.\n</tool_response>" in text
    steps = [STYLE.step_text(t) + "<|im_end|>" for t in STYLE.turns(EPISODE)]
    assert trained_text(text, spans) == "".join(steps)  # calls trained, results and prompts not
    assert steps[1].startswith("<tool_call>\n")  # a step without a thought is its call alone
    hermes_text, _ = STYLE.render(EPISODE, load(smollm2_dir, None))
    assert tool_calls.HERMES_HEAD in hermes_text and "# Tools" not in hermes_text


def test_native_and_hermes_conversations_convert_without_loss():
    messages = STYLE.prompt(EPISODE.question, STYLE.turns(EPISODE))
    native, tools = tool_calls.native_conversation(messages)
    assert tools == tool_calls.TOOLS
    assert [m["role"] for m in native] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert native[1]["tool_calls"][0]["function"] == {"name": "search", "arguments": {"query": "Peer Gynt"}}
    client = [{"role": "system", "content": "Be brief."}, *tool_calls.openai_messages("Q?", STYLE.turns(EPISODE))]
    back, _ = tool_calls.native_conversation(tool_calls.hermes_messages(client, tool_calls.TOOLS))
    assert back[0] == {"role": "system", "content": "Be brief."} and len(back) == len(client)
    assert tool_calls.native_conversation([{"role": "user", "content": "plain chat"}]) is None


@pytest.mark.parametrize("template", [QWEN_STYLE, LLAMA_STYLE])
def test_prompts_are_training_prefixes_with_a_tools_template(smollm2_dir, assets, template):
    tok = load(smollm2_dir, template)
    trajs = read_any(assets / "fireact_gpt.jsonl") + read_any(assets / "fireact_alpaca.json") + [EPISODE, ANY_TOOLS]
    assert assert_prompts_are_training_prefixes(trajs, tok, "chat", "tool-calls") == 20
    first = prompt_text(STYLE.prompt(EPISODE.question, []), tok)
    assert first.endswith("<|im_start|>assistant\n") and ("# Tools" in first) == (template is QWEN_STYLE)
