"""Chat messages as fireact reads and writes them: the roles, and a message's text."""

from __future__ import annotations

ROLES = ("system", "user", "assistant")  # what fireact writes, serves and fine-tunes on
READ_ROLES = ("system", "developer", "user", "assistant")  # also read from others' rollout files


def message_text(content: object, where: str) -> str:
    """A chat message's content: a string, or OpenAI content parts when all are text (joined with "",
    as OpenAI does); other parts (images, audio) have no text to train on and are refused (ValueError)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        for p in content:
            if p.get("type") != "text":
                raise ValueError(f"{where}.content has a part of type {p.get('type')!r}; only text parts can be read")
            if not isinstance(p.get("text"), str):
                raise ValueError(f"{where}.content has a text part whose text is not a string")
        return "".join(p["text"] for p in content)
    raise ValueError(f"{where}.content must be a string or a list of text parts, got {type(content).__name__}")
