"""Chat templates that render `tools=` themselves, written for the tests in the layouts of two
families (no such tokenizer is on this machine): ChatML with Hermes/Qwen2.5-style `<tool_call>` blocks
(fireact renders with it), that with a thinking block on the last turn only, and Llama-3.1-style
bare JSON calls (fireact keeps its Hermes rendering for the last two)."""

from __future__ import annotations

from pathlib import Path

QWEN_STYLE = """\
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% elif message.role == 'assistant' %}{{ '<|im_start|>assistant' }}
{%- if message.content %}{{ '\n' + message.content }}{% endif %}
{%- for call in message.tool_calls or [] %}
{%- set call = call.function if call.function is defined else call %}
{{- '\n<tool_call>\n{"name": "' + call.name + '", "arguments": ' + (call.arguments | tojson) + '}\n</tool_call>' }}
{%- endfor %}{{ '<|im_end|>\n' }}
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

# the same, but a thinking block on the last assistant turn only (Qwen3 renders history so): a turn's
# text changes once later turns follow, so training text is not prompt + reply
THINKING_LAST = QWEN_STYLE.replace(
    "{{ '<|im_start|>assistant' }}",
    "{{ '<|im_start|>assistant' }}{% if loop.last %}{{ '\\n<think>\\n\\n</think>\\n' }}{% endif %}",
)
assert THINKING_LAST != QWEN_STYLE

LLAMA_STYLE = """\
{%- for message in messages %}{{ '<|im_start|>' + message.role + '\n' }}
{%- if message.role == 'user' and loop.first and tools %}
{{- 'Given the following functions, respond with a JSON function call. ' }}
{%- for t in tools %}{{ t | tojson }}{% endfor %}{{ '\n' }}
{%- endif %}
{%- for call in message.tool_calls or [] %}
{{- '{"name": "' + call.function.name + '", "parameters": ' + (call.function.arguments | tojson) + '}' }}
{%- else %}{{ message.content }}
{%- endfor %}{{ '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"""


def with_template(model_dir: str, out: Path, template: str) -> str:
    """A copy of a model folder (its files linked) whose tokenizer has `template` as chat template."""
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(model_dir).iterdir():
        if f.name != "chat_template.jinja":
            (out / f.name).symlink_to(f.resolve())
    (out / "chat_template.jinja").write_text(template)
    return str(out)
