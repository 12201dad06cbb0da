"""OpenAI-compatible chat completions through the official client, with its retries and prices."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fireact.data.prompt_style import Prompt
from fireact.errors import FireactError
from fireact.lm.base import Completion, truncate_at_stop
from fireact.secrets import redact

# USD per 1K (prompt, completion) tokens; longest matching prefix wins, unknown models cost 0.
PRICES_PER_1K = {
    "gpt-4": (0.03, 0.06),
    "gpt-4-32k": (0.06, 0.12),
    "gpt-4-turbo": (0.01, 0.03),
    "gpt-4-1106": (0.01, 0.03),
    "gpt-4o": (0.0025, 0.01),
    "gpt-4o-mini": (0.00015, 0.0006),
    "gpt-3.5-turbo": (0.0015, 0.002),
    "gpt-3.5-turbo-0125": (0.0005, 0.0015),
}


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    match = max((k for k in PRICES_PER_1K if model.startswith(k)), key=len, default=None)
    if match is None:
        return 0.0
    p, c = PRICES_PER_1K[match]
    return (prompt_tokens * p + completion_tokens * c) / 1000


def server_key(base_url: str | None) -> str | None:
    """$FIREACT_API_KEY for a server that is not OpenAI's (a `fireact serve`, say): the key fireact's
    servers check, so an OpenAI key is not sent to it when both are set."""
    if base_url and "api.openai.com" not in base_url:
        return os.environ.get("FIREACT_API_KEY")
    return None


class OpenAILM:
    """Chat completions through the official openai client; a thread pool bounds concurrency."""

    batched = False
    continuous = False
    returns_tokens = False  # chat completions: text only
    prompt_style = None  # a remote model's format is chat messages

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        requests_per_minute: float | None = None,
        max_retries: int = 5,
        timeout: float = 60.0,
    ):
        from openai import OpenAI

        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self._key = (
            api_key or server_key(base_url) or os.environ.get("OPENAI_API_KEY") or ("EMPTY" if base_url else None)
        )
        if not self._key:
            raise FireactError("openai backend: set OPENAI_API_KEY (or --base-url for a local server)")
        self.model = model
        self.name = f"openai:{model}"
        self.client = OpenAI(api_key=self._key, base_url=base_url, max_retries=max_retries, timeout=timeout)
        self.concurrency = max(1, concurrency)
        self._min_interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_slot = 0.0
        self._rate_lock = threading.Lock()

    def reset_cache(self) -> None:
        pass

    def _wait_for_rate_limit(self) -> None:
        if not self._min_interval:
            return
        with self._rate_lock:
            now = time.monotonic()
            start = max(now, self._next_slot)
            self._next_slot = start + self._min_interval
        if start > now:
            time.sleep(start - now)

    def _one(self, prompt: Prompt, stop: list[str], max_tokens: int, temperature: float, after_action: bool):
        import openai

        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        self._wait_for_rate_limit()
        try:
            r = self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                stop=stop[:4] or None,  # the API takes at most 4 stop strings
                max_tokens=max_tokens,
                temperature=temperature,
                n=1,
            )
        except openai.OpenAIError as e:
            return Completion("", error=redact(f"{type(e).__name__}: {e} ({self.client.base_url})", (self._key,)))
        if isinstance(r, str):  # the client hands back a body that is not JSON (a proxy's error page) as text
            return Completion(
                "", error=f"{self.client.base_url}: the reply is not a chat completion (starts {r[:60]!r})"
            )
        text = r.choices[0].message.content or "" if r.choices else ""
        pt = r.usage.prompt_tokens if r.usage else 0
        ct = r.usage.completion_tokens if r.usage else 0
        text = truncate_at_stop(text, stop, after_action)
        return Completion(text, pt, ct, price(self.model, pt, ct))

    def complete(self, prompts, stop, max_tokens, temperature=0.0, stop_after_action=False) -> list[Completion]:
        if len(prompts) == 1:
            return [self._one(prompts[0], stop, max_tokens, temperature, stop_after_action)]
        with ThreadPoolExecutor(min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._one(p, stop, max_tokens, temperature, stop_after_action), prompts))
