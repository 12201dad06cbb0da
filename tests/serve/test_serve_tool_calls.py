"""`fireact serve` speaks the OpenAI tools API: `tools` in, `tool_calls` out (whole and streamed), tool
results back in, through the real openai client, so an OpenAI-client agent loop drives a fireact
model unchanged, with the Hermes rendering and with a template that renders tools itself. The model
is a tiny one taught (overfit on one reply) to call a tool."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from caller_model import teach
from tool_templates import QWEN_STYLE

from fireact.data import tool_calls
from fireact.lm.hf import HFLM
from fireact.serve.server import make_server

CLIENT_TOOLS = [  # a client's own tool, not one of fireact's
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a topic up.",
            "parameters": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]},
        },
    }
]
QUESTION = [{"role": "user", "content": "How long is the Nile?"}]
REPLY = 'Let me look it up.\n<tool_call>\n{"name": "lookup", "arguments": {"topic": "Nile"}}\n</tool_call><|im_end|>'


@pytest.fixture(scope="module", params=[None, QWEN_STYLE], ids=["hermes", "native"])
def caller(tiny_model_dir, request):
    """A tiny model that answers QUESTION with REPLY (greedy), rendered as the server renders it: the
    Hermes prompt, or a tools template's own (the model learned only that one, so the server must
    render it so to get the call)."""
    from transformers import AutoModelForCausalLM

    from fireact.data.prompt_style import prompt_text
    from fireact.lm.models import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    tok.chat_template = request.param or tok.chat_template
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    prompt = prompt_text(tool_calls.hermes_messages(QUESTION, CLIENT_TOOLS), tok)
    assert ("# Tools" in prompt) == (request.param is not None)
    teach(model, tok, [prompt], REPLY)
    return HFLM(model, tok, name="hf:caller")


@pytest.fixture
def client(caller):
    import openai

    server = make_server(caller, port=0, model_name="caller", slots=2)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="x", max_retries=0)
    server.shutdown()
    server.server_close()
    server.service.close()


def test_tool_calls_whole_and_streamed(client):
    r = client.chat.completions.create(model="caller", messages=QUESTION, tools=CLIENT_TOOLS, max_tokens=48)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me look it up."
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "lookup" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"topic": "Nile"}
    chunks = list(client.chat.completions.create(model="caller", messages=QUESTION, tools=CLIENT_TOOLS,
                                                 max_tokens=48, stream=True))  # fmt: skip
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    streamed = [t for c in chunks for t in c.choices[0].delta.tool_calls or []]
    assert content.strip() == "Let me look it up." and "<tool" not in content  # the call never leaks as text
    assert [(t.function.name, json.loads(t.function.arguments)) for t in streamed] == [("lookup", {"topic": "Nile"})]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_an_agent_loop_sends_the_result_back(client):
    """The client's loop: the call, then the tool's result as a `tool` message, then the next reply."""
    first = client.chat.completions.create(model="caller", messages=QUESTION, tools=CLIENT_TOOLS, max_tokens=48)
    call = first.choices[0].message.tool_calls[0]
    history = [*QUESTION, first.choices[0].message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "6,650 km"}]  # fmt: skip
    second = client.chat.completions.create(model="caller", messages=history, tools=CLIENT_TOOLS, max_tokens=8)
    assert second.choices[0].finish_reason in ("stop", "length", "tool_calls")
    plain = client.chat.completions.create(model="caller", messages=QUESTION, max_tokens=8)  # no tools: plain text
    assert plain.choices[0].message.tool_calls is None


def test_a_tool_calls_model_is_offered_its_own_tools():
    """Served in the tool-call protocol (saved with the weights, or --protocol), a request that names
    no tools is rendered with the tools the model was trained with; a react model's stays plain chat."""
    from fireact.data.prompt_style import PromptStyle
    from fireact.serve.server import parse_request, request_prompt

    req = parse_request(json.dumps({"messages": QUESTION}).encode(), 64)
    prompt, calls = request_prompt(req, PromptStyle("chat", protocol="tool-calls"))
    assert calls and prompt[0]["role"] == "system" and '"name": "search"' in prompt[0]["content"]
    assert request_prompt(req, PromptStyle("chat")) == (QUESTION, False)
    req = parse_request(json.dumps({"messages": QUESTION, "tools": CLIENT_TOOLS, "tool_choice": "none"}).encode(), 64)
    prompt, calls = request_prompt(req, PromptStyle("chat"))
    assert not calls and '"name": "lookup"' in prompt[0]["content"]  # offered, but the reply is read as text


def test_unsupported_tool_choice_and_bad_tools_are_400(client):
    import openai

    with pytest.raises(openai.BadRequestError, match="tool_choice 'required' is not supported"):
        client.chat.completions.create(model="caller", messages=QUESTION, tools=CLIENT_TOOLS, tool_choice="required")
    with pytest.raises(openai.BadRequestError, match="tools must be a list"):
        client.chat.completions.create(model="caller", messages=QUESTION, tools=[{"type": "function"}])
    bad_call = {"role": "assistant", "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "lookup", "arguments": "{oops"}}]}  # fmt: skip
    with pytest.raises(openai.BadRequestError, match="messages\\[1\\]"):
        client.chat.completions.create(model="caller", messages=[*QUESTION, bad_call], tools=CLIENT_TOOLS)
