"""Rollouts on OpenAI-compatible inference servers (vLLM, or `fireact serve`), token-exact.

The trainer's tokenizer renders and tokenizes each prompt; the server gets the token ids
(`/v1/completions`, `prompt: [ids]`) and answers with the ids it sampled and their log-probs
(`return_token_ids`, `return_tokens_as_token_ids`, `logprobs`). So the episode's tokens are the
server's own, never a re-tokenization, and the trainer can compare its log-probs with the server's.
Requests are spread over the servers round-robin; one that fails (down, timing out, 5xx) is skipped
for a while and the request goes to the next, so a server dying mid-step costs retries, not the step.
The trainer's LoRA weights reach the servers through vLLM's runtime adapter loading
(`push_adapter`: `/v1/load_lora_adapter`, which `fireact serve --allow-adapter-loading DIR` has too).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fireact.data.prompt_style import Prompt, PromptStyle, prompt_ids
from fireact.errors import FireactError
from fireact.lm.base import Completion, step_complete, truncate_at_stop
from fireact.secrets import redact

DOWN_SECONDS = 30.0  # a failed server is skipped this long before it is tried again


def api_root(url: str) -> str:
    """`http://host:port` or `.../v1` -> `http://host:port/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


class TokenServersLM:
    """`LM` on one or more completion servers; every Completion carries its exact tokens.

    Args:
        urls: the servers' base URLs (`http://host:8000` or `.../v1`).
        model: the model (or loaded adapter) name the servers serve; checked against `/v1/models`.
        tokenizer: the trainer's tokenizer (the servers must serve the same vocabulary).
        prompt_style: how episodes are rendered (the trainer's).
    """

    batched = False
    continuous = False
    returns_tokens = True

    def __init__(
        self,
        urls: list[str],
        model: str,
        tokenizer: Any,
        prompt_style: PromptStyle | None = None,
        concurrency: int = 32,
        timeout: float = 300.0,
        max_retries: int = 1,
        seed: int = 0,
    ):
        from openai import OpenAI

        if not urls:
            raise FireactError("rollout servers: give at least one base URL")
        self._key = os.environ.get("FIREACT_API_KEY") or "EMPTY"  # what fireact serve and vLLM --api-key check
        self.urls = [api_root(u) for u in urls]
        self.clients = [
            OpenAI(base_url=u, api_key=self._key, max_retries=max_retries, timeout=timeout) for u in self.urls
        ]
        self.model, self.tokenizer, self.prompt_style = model, tokenizer, prompt_style
        self.name = f"servers:{model}"
        self.concurrency = max(1, concurrency)
        self.requests = [0] * len(self.urls)  # answered by each server
        self._down: dict[int, float] = {}  # server index -> when it last failed
        self._turn = itertools.count()
        self._seeds = itertools.count(seed * 1_000_003)  # every request its own seed: servers never draw alike
        self._lock = threading.Lock()

    def reset_cache(self) -> None:
        pass

    def _error(self, url: str, e: Exception) -> str:
        return redact(f"{url}: {type(e).__name__}: {e}", (self._key,))

    def check(self) -> None:
        """Every server answers and serves `self.model`; else one message naming the URL."""
        import openai

        for url, client in zip(self.urls, self.clients):
            try:
                served = [m.id for m in client.models.list()]
            except openai.OpenAIError as e:
                raise FireactError(f"rollout server {self._error(url, e)}: check that it is running and reachable, "
                                   "and that $FIREACT_API_KEY is its key") from None  # fmt: skip
            if self.model not in served:
                raise FireactError(f"rollout server {url} does not serve {self.model!r} (it serves {served}): check "
                                   "the model name in the config against the server's --served-model-name / --model-name")  # fmt: skip

    def _order(self) -> list[int]:
        """Servers to try for the next request: round-robin, the ones that failed lately last."""
        start = next(self._turn)
        n = len(self.urls)
        order = [(start + k) % n for k in range(n)]
        now = time.monotonic()
        with self._lock:
            return sorted(order, key=lambda i: now - self._down.get(i, -1e9) < DOWN_SECONDS)

    def _one(
        self, prompt: Prompt, stop: list[str], max_tokens: int, temperature: float, after_action: bool
    ) -> Completion:
        import openai

        ids = prompt_ids(prompt, self.tokenizer)
        seed = next(self._seeds)
        errors = []
        for i in self._order():
            try:
                r = self.clients[i].completions.create(
                    model=self.model, prompt=ids, max_tokens=max_tokens, temperature=temperature,
                    stop=stop or None, logprobs=1, seed=seed,
                    extra_body={"return_token_ids": True, "return_tokens_as_token_ids": True},
                )  # fmt: skip
            except (openai.APIConnectionError, openai.InternalServerError) as e:  # down or dying: the next one
                with self._lock:
                    self._down[i] = time.monotonic()
                errors.append(self._error(self.urls[i], e))
                continue
            except openai.OpenAIError as e:  # the request itself is refused: another server would refuse it too
                raise FireactError(f"rollout server {self._error(self.urls[i], e)}") from None
            with self._lock:
                self.requests[i] += 1
            return self._completion(self.urls[i], r, ids, stop, after_action)
        raise FireactError("every rollout server failed: " + "; ".join(errors))

    def _completion(self, url: str, r: Any, ids: list[int], stop: list[str], after_action: bool) -> Completion:
        """The step's text, ids and log-probs, cut where the rollout engine would have stopped: at the
        first token after which the step is complete (the server cannot apply fireact's stop rule)."""
        choice = r.choices[0]
        lp = choice.logprobs
        tokens = getattr(choice, "token_ids", None)
        if tokens is None and lp is not None and all(t.startswith("token_id:") for t in lp.tokens or []):
            tokens = [int(t.removeprefix("token_id:")) for t in lp.tokens]
        logprobs = lp.token_logprobs if lp is not None else None
        if tokens is None or logprobs is None or len(tokens) != len(logprobs):
            raise FireactError(f"rollout server {url} returned no sampled token ids and log-probs: it must answer "
                               "/v1/completions with return_token_ids or return_tokens_as_token_ids and logprobs "
                               "(vLLM >= 0.10.2, or fireact serve)")  # fmt: skip
        n = len(tokens)
        for k in range(1, len(tokens) + 1):
            if step_complete(self.tokenizer.decode(tokens[:k], skip_special_tokens=True), stop, after_action):
                n = k
                break
        text = truncate_at_stop(self.tokenizer.decode(tokens[:n], skip_special_tokens=True), stop, after_action)
        return Completion(text, len(ids), n, prompt_ids=ids, token_ids=list(tokens[:n]),
                          logprobs=[float(x) for x in logprobs[:n]])  # fmt: skip

    def complete(self, prompts, stop, max_tokens, temperature=0.0, stop_after_action=False) -> list[Completion]:
        if len(prompts) == 1:
            return [self._one(prompts[0], stop, max_tokens, temperature, stop_after_action)]
        with ThreadPoolExecutor(min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._one(p, stop, max_tokens, temperature, stop_after_action), prompts))

    # ------------------------------------------------------------------ adapters
    def _admin(self, i: int, route: str, body: dict[str, Any]) -> tuple[int, str]:
        """(status, error message) of a POST to a server's adapter route, through its openai client."""
        import openai

        try:
            self.clients[i].post(f"/{route}", cast_to=object, body=body)
        except openai.APIStatusError as e:
            return e.status_code, redact(str(e.message), (self._key,))[:300]
        except openai.OpenAIError as e:
            raise FireactError(f"rollout server {self._error(self.urls[i], e)}: cannot reach it to {route}") from None
        return 200, ""

    def push_adapter(self, name: str, path: str, previous: str | None = None) -> float:
        """Load the adapter folder `path` on every server as `name` (then sample with it), and unload
        `previous`; the folder must be readable by the servers at that path. Returns the seconds taken."""
        started = time.perf_counter()

        def push(i: int) -> None:
            status, text = self._admin(i, "load_lora_adapter", {"lora_name": name, "lora_path": path})
            if status != 200:
                raise FireactError(
                    f"rollout server {self.urls[i]} refused adapter {path} ({status}: {text}): fireact serve needs "
                    "--allow-adapter-loading with a folder above it; vLLM needs --enable-lora (and --max-lora-rank "
                    "at least the adapter's) and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
                )
            if previous:
                self._admin(i, "unload_lora_adapter", {"lora_name": previous})  # best effort: it may be gone

        with ThreadPoolExecutor(len(self.urls)) as pool:
            list(pool.map(push, range(len(self.urls))))
        self.model = name
        return time.perf_counter() - started
