"""The one renderer: the text a model is trained on and the prompt it continues at inference.

Training (`PromptStyle.render`) and inference (`PromptStyle.prompt` + `PromptStyle.prompt_text`)
call the same functions here, so the prompt of turn k plus the agent's turn-k text is the training
text up to the end of trained span k, character for character and token for token
(tests/data/test_prompt_style.py). A `PromptStyle` is saved with the weights (Lightning checkpoint
and export folder, `STYLE_FILE`) so inference picks the format the model was trained on.

Two formats, both zero-shot (no few-shot examples in the training text):

- `chat`: the tokenizer's chat template over FireAct's gpt_format messages: user = question,
  assistant = "Thought: ...\\nAction: ...", user = "Observation: ...". Trained: each assistant
  content plus the special token that closes the turn (e.g. `<|im_end|>`).
- `alpaca`: FireAct's alpaca prompt, then "Thought: ...\\nAction: ...\\nObservation: ...\\n" lines.
  Trained: each "Thought: ...\\nAction: ..." with the newline that ends it, and EOS after the final
  action. Observations are inside the same response string but never trained.

Either format renders the ReAct protocol; `chat` also renders the tool-call protocol (the style's
protocol object, `fireact.data.protocols`, writes the messages; `fireact.data.tool_calls`: the agent's step is its thought and a `<tool_call>` JSON block, a tool's
result a `<tool_response>` user turn; trained: each assistant content with its closing token). A
template that renders tools itself (`tool_calls.renders_calls`) renders that protocol its own way,
with `tools=`; trained then: each assistant turn as the template writes it, up to its closing token.

An environment's tools and instructions (a record's `tools`, `instructions`) open the conversation as
a system message (FireAct's own search and finish add none, so its format is unchanged).

The "Episode finished, reward = ..." line is never rendered (it leaks the reward), nor is an
observation after the last agent turn (nothing after it is trained).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fireact.data import tool_calls
from fireact.data.protocols import PROTOCOLS, Message, Protocol, get_protocol
from fireact.data.react_grammar import EPISODE_FINISHED, agent_text, observation_text, react_system
from fireact.data.trajectory import Trajectory, Turn
from fireact.errors import FireactError

FORMATS: tuple[str, ...] = ("chat", "alpaca")
STYLE_FILE = "fireact_prompt_style.json"
ALPACA_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{question}\n\n### Response:\n"
)

Prompt = list[Message] | str | list[int]  # chat messages, one raw text (alpaca), or token ids as fed
Span = tuple[int, int]


def training_turns(traj: Trajectory) -> list[Turn]:
    """The turns as rendered: reward lines dropped, no observation after the last agent turn."""
    turns = [
        replace(
            t, observation=None if t.observation is None or EPISODE_FINISHED.search(t.observation) else t.observation
        )
        for t in traj.turns
    ]
    if turns:
        turns[-1] = replace(turns[-1], observation=None)
    return turns


def react_lines(turns: list[Turn]) -> str:
    """Thought/Action/Observation lines, each ending in a newline (the alpaca response body)."""
    return "".join(
        agent_text(t) + "\n" + (observation_text(t.observation) + "\n" if t.observation is not None else "")
        for t in turns
    )


def _special_tokens(tokenizer: Any) -> list[str]:
    cached = getattr(tokenizer, "_fireact_specials", None)
    if cached is None:
        cached = sorted({t for t in tokenizer.all_special_tokens if t}, key=len, reverse=True)
        tokenizer._fireact_specials = cached
    return cached


def _require_chat_template(tokenizer: Any) -> None:
    if getattr(tokenizer, "chat_template", None) is None:
        raise FireactError(f"tokenizer {tokenizer.name_or_path!r} has no chat template: use format 'alpaca'")


@dataclass(frozen=True)
class PromptStyle:
    """How a model's ReAct episodes are written as text; travels with the weights.

    format: "chat" (the tokenizer's chat template) or "alpaca" (FireAct's alpaca prompt).
    base_model: the model name the weights were fine-tuned from (what an adapter loads on top of).
    protocol: how a step calls a tool: "react" (FireAct's `Action: search[...]` text, observations as
        user turns) or "tool-calls" (`fireact.data.tool_calls`: JSON tool calls, chat format only).
    """

    format: str = "chat"
    base_model: str | None = None
    protocol: str = "react"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise FireactError(f"unknown prompt format {self.format!r}: use one of {', '.join(FORMATS)}")
        if get_protocol(self.protocol).chat_only and self.format != "chat":
            raise FireactError(f"the {self.protocol} protocol is a chat format: use format 'chat'")

    # -- persistence ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.protocol == "react":  # the default: style files written before protocols read the same
            del d["protocol"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "prompt style") -> PromptStyle:
        if not isinstance(d, dict) or "format" not in d:
            raise FireactError(f"{where}: expected an object with a 'format' key, got {d!r}")
        unknown = sorted(set(d) - {"format", "base_model", "protocol"})
        if unknown:
            raise FireactError(f"{where}: unknown key(s) {', '.join(unknown)}")
        return cls(**d)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / STYLE_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> PromptStyle | None:
        """The style saved in a model folder, or None when the folder has none."""
        path = Path(folder) / STYLE_FILE
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FireactError(f"{path}: not a readable prompt style ({e})") from None
        return cls.from_dict(d, str(path))

    @property
    def speaks(self) -> Protocol:
        """The protocol object: how a step calls a tool, renders and is read back."""
        return PROTOCOLS[self.protocol]

    def turns(self, traj: Trajectory) -> list[Turn]:
        """The turns this style renders for training: `training_turns`, as its protocol writes them."""
        return self.speaks.rendered(training_turns(traj))

    def step_text(self, turn: Turn) -> str:
        """What the agent writes in one step in this style's protocol (the text of its trained span)."""
        return self.speaks.step_text(turn)

    # -- tokens -----------------------------------------------------------------------------------
    @property
    def add_special_tokens(self) -> bool:
        """alpaca text gets the tokenizer's BOS; a chat template writes its own special tokens."""
        return self.format == "alpaca"

    # -- inference --------------------------------------------------------------------------------
    def prompt(
        self,
        question: str,
        turns: list[Turn],
        prefix: str | list[Message] = "",
        pending_user_note: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        instructions: str | None = None,
    ) -> Prompt:
        """The prompt for the agent's next step: chat messages or one alpaca text.

        `prefix` is what few-shot prompting puts before the question (text, or earlier chat turns);
        `pending_user_note` is appended to the last user turn in the prompt only (the Reflexion
        request), never to the stored observation. `tools` and `instructions`: an environment's (None:
        FireAct's search and finish, no instructions).
        """
        if self.format == "alpaca":
            question = _alpaca_question(question, tools, instructions)
            text = ALPACA_PROMPT.format(question=prefix + question if prefix else question) + react_lines(turns)
            return text + f"{pending_user_note}\n" if pending_user_note else text
        messages: list[Message] = list(prefix) if isinstance(prefix, list) else []
        head = f"{prefix}Question: {question}" if isinstance(prefix, str) and prefix else question
        system = self.speaks.conversation(head, turns, tools, instructions)
        if messages and system and system[0]["role"] == "system":  # few-shot turns come after the system text
            messages = [system[0], *messages]
            system = system[1:]
        messages += system
        if pending_user_note:
            messages[-1] = {**messages[-1], "content": f"{messages[-1]['content']}\n{pending_user_note}"}
        return messages

    def from_messages(self, messages: list[Message]) -> Prompt:
        """A client's chat request (`fireact serve`) in this format: as is for chat; for alpaca the
        first user message is the instruction (system text before it) and every later message one
        line of the response, as `prompt` writes an episode."""
        if self.format == "chat":
            return messages
        system = [m["content"] for m in messages if m["role"] == "system"]
        rest = [m for m in messages if m["role"] != "system"]
        if not rest or rest[0]["role"] != "user":
            raise FireactError("an alpaca prompt needs a user message (the question) first")
        instruction = "\n\n".join([*system, rest[0]["content"]])
        return ALPACA_PROMPT.format(question=instruction) + "".join(m["content"] + "\n" for m in rest[1:])

    # -- training ---------------------------------------------------------------------------------
    def render(self, traj: Trajectory, tokenizer: Any) -> tuple[str, list[Span]]:
        """(training text, character spans that carry the loss). Pure: same input, same output."""
        if self.format == "chat":
            return _render_chat(traj, self.turns(traj), tokenizer, self.speaks)
        return _render_alpaca(traj, tokenizer)


def prompt_text(prompt: Prompt, tokenizer: Any) -> str:
    """The exact text a local model continues: chat messages through the template with the
    assistant header opened; an alpaca prompt is already text."""
    if isinstance(prompt, str):
        return prompt
    return chat_text(prompt, tokenizer, add_generation_prompt=True)


def prompt_ids(prompt: Prompt, tokenizer: Any) -> list[int]:
    """The prompt's token ids, tokenized as training tokenizes the same text (alpaca gets BOS); a
    prompt given as token ids (a `/v1/completions` request) is used as it is."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        return list(prompt)
    style = PromptStyle("alpaca" if isinstance(prompt, str) else "chat")
    return tokenizer(prompt_text(prompt, tokenizer), add_special_tokens=style.add_special_tokens)["input_ids"]


def _native(messages: list[Message], tokenizer: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """The tool-call conversation in the tools API's shape, where the template renders tools itself."""
    native = tool_calls.native_conversation(messages)
    return native if native is not None and tool_calls.renders_calls(tokenizer) else None


def chat_text(messages: list[Message], tokenizer: Any, add_generation_prompt: bool = False) -> str:
    """Messages through the tokenizer's chat template (a tool-call conversation with `tools=` where
    the template renders tools itself)."""
    _require_chat_template(tokenizer)
    native = _native(messages, tokenizer)
    if native is not None:
        return tokenizer.apply_chat_template(
            native[0], tools=native[1], tokenize=False, add_generation_prompt=add_generation_prompt
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _render_chat(traj: Trajectory, turns: list[Turn], tokenizer: Any, protocol: Protocol) -> tuple[str, list[Span]]:
    question, where = traj.question, traj.id
    messages = protocol.conversation(question, turns, traj.tools, traj.instructions)
    text = chat_text(messages, tokenizer)
    if protocol.declares_tools and tool_calls.renders_calls(tokenizer):  # rendered by chat_text's native path
        return text, _native_spans(messages, text, tokenizer, where or question[:60])
    specials = _special_tokens(tokenizer)
    spans: list[Span] = []
    cursor = 0
    for m in messages:
        start = text.find(m["content"], cursor)
        if start < 0:
            raise FireactError(
                f"the chat template of {tokenizer.name_or_path!r} changes message text (trajectory {where or question[:60]!r}): "
                "cannot locate the agent's turns; use format 'alpaca'"
            )
        end = start + len(m["content"])
        if m["role"] == "assistant":
            closer = next((s for s in specials if text.startswith(s, end)), None)
            spans.append((start, end + len(closer) if closer else end))
        cursor = end
    return text, spans


def _native_spans(messages: list[Message], text: str, tokenizer: Any, where: str) -> list[Span]:
    """Each assistant turn as the template writes it: from where the prompt before it ends (with the
    assistant header opened) to the special token that closes it."""
    specials = _special_tokens(tokenizer)
    spans: list[Span] = []
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = chat_text(messages[:k], tokenizer, add_generation_prompt=True)
        turn = chat_text(messages[: k + 1], tokenizer)
        ends = [(i, s) for s in specials if (i := turn.find(s, len(prompt))) >= 0]
        end = min(ends, key=lambda e: (e[0], -len(e[1])), default=None)
        if end is None or not turn.startswith(prompt) or not text.startswith(turn[: end[0] + len(end[1])]):
            raise FireactError(
                f"the chat template of {tokenizer.name_or_path!r} does not render the tool-call episode "
                f"{where!r} as a prompt and its continuation: cannot locate the agent's turns"
            )
        spans.append((len(prompt), end[0] + len(end[1])))
    return spans


def _render_alpaca(traj: Trajectory, tokenizer: Any) -> tuple[str, list[Span]]:
    eos = tokenizer.eos_token or ""
    turns = training_turns(traj)
    text = ALPACA_PROMPT.format(question=_alpaca_question(traj.question, traj.tools, traj.instructions))
    spans: list[Span] = []
    for i, turn in enumerate(turns):
        trained = agent_text(turn) + (eos if i == len(turns) - 1 else "\n")
        spans.append((len(text), len(text) + len(trained)))
        text += trained
        if turn.observation is not None:
            text += observation_text(turn.observation) + "\n"
    return text, spans


def _alpaca_question(question: str, tools: list[dict[str, Any]] | None, instructions: str | None) -> str:
    system = react_system(tools, instructions)
    return f"{system}\n\n{question}" if system else question


def trained_text(text: str, spans: list[Span]) -> str:
    """The characters the loss is on, concatenated (what the label tokens must decode to)."""
    return "".join(text[a:b] for a, b in spans)
