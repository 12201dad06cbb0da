"""Tool-call chat JSONL that is not what it claims: each refused naming the file, line and what is
wrong, never an AttributeError or a silently wrong record."""

from __future__ import annotations

import json

import pytest

from fireact.data.fireact_format import read_fireact_file
from fireact.errors import FireactError

Q = {"role": "user", "content": "Who wrote Hamlet?"}


def call(name: str, arguments: dict, id_: str = "c0") -> dict:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        ([Q, "a plain string", {"role": "tool", "tool_call_id": "c0", "content": "x"}], "message 1 must be an object"),
        ([Q, {"role": "assistant", "tool_calls": {"function": {"name": "search", "arguments": "{}"}}},
          {"role": "tool", "content": "x"}], "tool_calls must be a list"),
        ([Q, {"role": "assistant", "tool_calls": [call("search", {"query": "Hamlet"})]},
          {"role": "assistant", "tool_calls": [call("finish", {"answer": "Shakespeare"}, "c1")]}],
         "step 0 calls search but no tool result answers it"),
    ],
)  # fmt: skip
def test_a_malformed_tool_call_episode_is_named(tmp_path, messages, words):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": messages}) + "\n")
    with pytest.raises(FireactError, match=f"chat.jsonl:1: .*{words}"):
        read_fireact_file(path)


def test_grpo_refuses_a_tis_cap_that_would_zero_or_reverse_the_gradient(tiny_model_dir):
    from fireact.modules.grpo import GRPOLM

    for cap in (0.0, -1.0):
        with pytest.raises(FireactError, match="model.tis_cap must be > 0"):
            GRPOLM(model=tiny_model_dir, tis_cap=cap)
