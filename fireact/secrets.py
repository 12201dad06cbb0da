"""Secrets come only from the environment; `redact` keeps them out of every message and file we write."""

from __future__ import annotations

import os
import re

SECRET_ENV = ("OPENAI_API_KEY", "SERPAPI_API_KEY", "SERPAPI_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_OPENAI_KEY = re.compile(r"sk-[A-Za-z0-9_\-*]{8,}")


def redact(text: str, extra: tuple[str | None, ...] = ()) -> str:
    """`text` with the values of the secret environment variables (and `extra`) and OpenAI-style
    keys replaced by ***."""
    for value in (*(os.environ.get(name) for name in SECRET_ENV), *extra):
        if value and len(value) >= 8:
            text = text.replace(value, "***")
    return _OPENAI_KEY.sub("sk-***", text)
