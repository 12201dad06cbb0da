"""Many clients' completion requests decoded together in the rollout engine (`fireact serve`).

Each request is a one-step episode in `ContinuousBatcher`: it takes a free slot at the next decode
step, shares the batch with the other requests (and reuses a slot's KV when its prompt extends what
that slot last saw, as an agent's growing conversation does), and frees the slot when it stops. A
request waits in a bounded queue when every slot is busy; a full queue is refused at once (`Full`)
so memory never grows with the load. One engine thread owns the model; HTTP threads only enqueue
and wait.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from fireact.agent.methods import MethodSpec
from fireact.data.prompt_style import Prompt
from fireact.lm.base import Completion
from fireact.rollout.config import EpisodeConfig
from fireact.rollout.engine import ContinuousBatcher
from fireact.rollout.job import RolloutJob

END = None  # marks the end of a request's text stream


class Full(Exception):
    """The request queue is full: answer 503 and let the client retry."""


@dataclass(eq=False)
class CompletionRequest:
    prompt: Prompt
    stop: list[str]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stream: queue.Queue | None = None  # text deltas as they are decoded, then END
    adapter: tuple[str, int] | None = None  # (LoRA adapter, version) to decode with; None: the model as is
    seed: int | None = None  # the request's own sampling seed (two servers must not draw alike)
    result: Future = field(default_factory=Future)  # the Completion, with its prompt and sampled tokens


class RequestEpisode:
    """The engine's episode protocol for a request: one step, then done."""

    def __init__(self, request: CompletionRequest):
        self.request, self.done, self.meta = request, False, {}
        self.sent = ""  # streamed so far
        self.token_turns = None  # set by the engine: the prompt and sampled ids, with log-probs

    def prompt(self) -> Prompt:
        return self.request.prompt

    def on_text(self, text: str) -> None:
        """Stream what can no longer turn into a stop string (nor a half-decoded character)."""
        r = self.request
        if r.stream is None or not text.startswith(self.sent):
            return
        hold = next((k for k in range(min(len(text), max(map(len, r.stop), default=1) - 1), 0, -1)
                     if any(s.startswith(text[-k:]) for s in r.stop)), 0)  # fmt: skip
        safe = len(text) - hold
        while safe > len(self.sent) and text[safe - 1] == "\ufffd":
            safe -= 1
        if safe > len(self.sent):
            r.stream.put(text[len(self.sent) : safe])
            self.sent = text[:safe]

    def act(self, c: Completion) -> None:
        self.completion, self.done = c, True
        if self.request.stream is not None and c.text.startswith(self.sent) and len(c.text) > len(self.sent):
            self.request.stream.put(c.text[len(self.sent) :])


class _Queue:
    """The engine's pending requests: bounded, thread-safe, and a wait for the idle engine."""

    def __init__(self, limit: int):
        self.items: deque[tuple[int, CompletionRequest]] = deque()
        self.control: deque[tuple[Callable[[], Any], Future]] = deque()  # run on the engine thread
        self.limit, self.closed, self.count = limit, False, 0
        self.cond = threading.Condition()

    def put(self, request: CompletionRequest) -> None:
        with self.cond:
            if len(self.items) >= self.limit:
                raise Full(f"{len(self.items)} requests already waiting")
            self.items.append((self.count, request))
            self.count += 1
            self.cond.notify()

    def popleft(self) -> tuple[int, CompletionRequest]:
        with self.cond:
            return self.items.popleft()

    def __bool__(self) -> bool:
        with self.cond:
            return bool(self.items)

    def wait(self) -> bool:
        with self.cond:
            self.cond.wait_for(lambda: self.items or self.control or self.closed)
            return not self.closed

    def run_control(self) -> None:
        while True:
            with self.cond:
                if not self.control:
                    return
                fn, done = self.control.popleft()
            try:
                done.set_result(fn())
            except BaseException as e:  # handed to the caller; the engine keeps serving
                done.set_exception(e)


class _ServeJob(RolloutJob):
    def __init__(self, requests: _Queue, slots: int):
        super().__init__([], self._start, self._finish, lambda: False, MethodSpec([], 1, False),
                         EpisodeConfig(batch_size=slots, record_tokens=True))  # fmt: skip
        self.requests = requests
        self.in_flight: set[CompletionRequest] = set()
        self.peak_in_flight = 0  # the most requests ever decoded together

    def _start(self, request: CompletionRequest) -> RequestEpisode:  # the engine passes what it popped
        self.in_flight.add(request)
        self.peak_in_flight = max(self.peak_in_flight, len(self.in_flight))
        return RequestEpisode(request)

    def _finish(self, index: int, ep: RequestEpisode) -> None:
        r = ep.request
        self.in_flight.discard(r)
        if r.stream is not None:
            r.stream.put(END)
        c = ep.completion
        if c.error is not None:  # refused by the engine (a prompt over the model's context)
            r.result.set_exception(RuntimeError(c.error))
            return
        (turn,) = ep.token_turns
        c.prompt_ids, c.token_ids, c.logprobs = turn.prompt, turn.generated, turn.logprobs
        r.result.set_result(c)

    def fail_in_flight(self, error: BaseException) -> None:
        for r in self.in_flight:
            if r.stream is not None:
                r.stream.put(END)
            r.result.set_exception(error)
        self.in_flight.clear()

    def pending(self) -> _Queue:
        return self.requests

    def wait_for_work(self) -> bool:
        return self.requests.wait()

    def spec_for(self, episode: RequestEpisode) -> MethodSpec:
        r = episode.request
        return MethodSpec(r.stop, r.max_tokens, False)

    def sampling_for(self, episode: RequestEpisode) -> tuple[float, float]:
        return episode.request.temperature, episode.request.top_p

    def seed_for(self, episode: RequestEpisode) -> int | None:
        return episode.request.seed

    def adapter_for(self, episode: RequestEpisode) -> tuple[str, int] | None:
        return episode.request.adapter

    def between_steps(self) -> None:
        self.requests.run_control()


class CompletionService:
    """`submit` requests from any thread; one engine thread decodes up to `slots` of them together."""

    def __init__(self, lm: Any, slots: int = 16, max_queue: int = 64):
        self.lm, self.slots = lm, slots
        self.requests = _Queue(max_queue)
        self.job = _ServeJob(self.requests, slots)
        self.thread = threading.Thread(target=self._loop, name="fireact-engine", daemon=True)
        self.thread.start()

    def submit(self, request: CompletionRequest) -> CompletionRequest:
        self.requests.put(request)  # raises Full
        return request

    def run_on_engine(self, fn: Callable[[], Any]) -> Any:
        """fn() on the engine thread between two decode steps (changing the model's weights under a
        forward would be a race); its result, or its exception, here."""
        done: Future = Future()
        with self.requests.cond:
            self.requests.control.append((fn, done))
            self.requests.cond.notify()
        return done.result()

    def _loop(self) -> None:

        while not self.requests.closed:
            try:
                ContinuousBatcher(self.lm, self.slots).run(self.job)
            except Exception as e:  # a failed step fails its requests; the service keeps serving
                self.job.fail_in_flight(e)

    def close(self) -> None:
        with self.requests.cond:
            self.requests.closed = True
            self.requests.cond.notify_all()
        self.thread.join(timeout=10)
