"""Run many agent episodes against an LM and a search tool; returns scored Trajectory records.

Local HF models (HFLM, continuous=True) run in `engine.py`'s decode loop: continuous batching with
each episode's KV kept across turns. Other batched backends (and HFLM(continuous=False)) advance all
live episodes one round per batched generate call, refilling a slot when its episode ends. Remote
backends (OpenAILM) run each episode in its own worker thread, so a slow request never holds up the
others.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from typing import Any

from fireact.agent.lm import LM
from fireact.agent.methods import Episode, method_spec
from fireact.agent.prompts import few_shot_prefix, pick_exemplars
from fireact.agent.tools import SearchTool
from fireact.data.tasks import Example, Task
from fireact.data.trajectory import Trajectory, Turn

Progress = Callable[[int, int], None]  # (episodes done, total)


def rich_progress(description: str = "rollouts"):
    """A context manager yielding a Progress callback that drives a rich progress bar."""
    from contextlib import contextmanager

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    @contextmanager
    def bar():
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ) as p:
            tid = p.add_task(description, total=None)
            yield lambda done, total: p.update(tid, completed=done, total=total)

    return bar()


def _io_exemplars(exemplars: list[Trajectory]) -> list[Trajectory]:
    out = []
    for e in exemplars:
        copy = Trajectory(**{**e.__dict__, "turns": [Turn("", f"finish[{e.prediction}]", None)]})
        out.append(copy)
    return out


def run_rollouts(
    lm: LM,
    tool: SearchTool,
    task: Task,
    examples: Iterable[Example],
    method: str = "react",
    few_shot: int = 0,
    exemplar_pool: list[Trajectory] | None = None,
    prompt_text: str | None = None,
    fmt: str = "chat",
    max_turns: int = 11,
    batch_size: int = 8,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    seed: int = 0,
    progress: Progress | str | None = None,
    on_done: Callable[[Trajectory], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    source: str = "",
) -> list[Trajectory]:
    """Run one episode per example and return the trajectories in example order.

    few_shot=K draws K successful exemplars of the task from `exemplar_pool` (seeded); a
    `prompt_text` replaces them with the user's own prompt; both 0/None means zero-shot (the
    format fine-tuned models are trained on). `on_done` sees each trajectory as soon as it ends;
    `should_stop` (checked before each new episode starts) ends a run early, e.g. on a cost cap.
    `progress` is a callback (done, total), "rich" for a progress bar, or None.
    """
    examples = list(examples)
    spec = method_spec(method, max_tokens)
    exemplars: list[Trajectory] = []
    if prompt_text is None and few_shot > 0:
        asked = {e.question for e in examples}
        exemplars = pick_exemplars(exemplar_pool or [], task.name, few_shot, seed, asked, method)
        if method == "io":
            exemplars = _io_exemplars(exemplars)
    prefix = few_shot_prefix(method, exemplars, prompt_text, fmt)
    meta = {"lm": lm.name, "tool": getattr(tool, "name", "search"), "few_shot": len(exemplars), "fmt": fmt}
    if prompt_text is not None:
        meta["few_shot"] = "prompt_file"
    tools = {"search": tool}

    def new_episode(ex: Example) -> Episode:
        return Episode(ex, task, method, prefix, fmt, 1 if method in ("io", "cot") else max_turns)

    reset = getattr(lm, "reset_cache", None)
    if reset is not None:
        reset()  # a model being trained changes between runs: never reuse its old KV
    results: dict[int, Trajectory] = {}
    ctx = rich_progress(f"{method} {task.name}") if progress == "rich" else nullcontext(progress)
    with ctx as report:

        def finish(i: int, ep: Episode) -> None:
            t = ep.to_trajectory(source, meta)
            results[i] = t
            if on_done is not None:
                on_done(t)
            if report is not None:
                report(len(results), len(examples))

        if report is not None:
            report(0, len(examples))
        stop = should_stop or (lambda: False)
        if getattr(lm, "continuous", False):
            from fireact.agent.engine import run_continuous

            run_continuous(lm, tools, spec, temperature, examples, new_episode, finish, batch_size, stop)
        elif lm.batched:
            _run_batched(lm, tools, spec, temperature, examples, new_episode, finish, batch_size, stop)
        else:
            _run_threaded(lm, tools, spec, temperature, examples, new_episode, finish, batch_size, stop)
    return [results[i] for i in sorted(results)]


def _run_batched(lm, tools, spec, temperature, examples, new_episode, finish, batch_size, stop) -> None:
    pending = deque(enumerate(examples))
    live: list[tuple[int, Episode]] = []
    while pending or live:
        while len(live) < batch_size and pending and not stop():
            i, ex = pending.popleft()
            live.append((i, new_episode(ex)))
        if not live:
            break
        prompts = [ep.prompt() for _, ep in live]
        completions = lm.complete(prompts, spec.stop, spec.max_tokens, temperature, spec.stop_after_action)
        for (i, ep), c in zip(live, completions):
            ep.feed(c, tools)
            if ep.done:
                finish(i, ep)
        live = [(i, ep) for i, ep in live if not ep.done]


def _play(lm, tools, spec, temperature, ep: Episode) -> Episode:
    while not ep.done:
        (c,) = lm.complete([ep.prompt()], spec.stop, spec.max_tokens, temperature, spec.stop_after_action)
        ep.feed(c, tools)
    return ep


def _run_threaded(lm, tools, spec, temperature, examples, new_episode, finish, workers, stop) -> None:
    workers = max(1, getattr(lm, "concurrency", workers) or workers)
    pending = deque(enumerate(examples))
    running: dict[Future, int] = {}
    with ThreadPoolExecutor(workers) as pool:
        while pending or running:
            while len(running) < workers and pending and not stop():
                i, ex = pending.popleft()
                running[pool.submit(_play, lm, tools, spec, temperature, new_episode(ex))] = i
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                finish(running.pop(fut), fut.result())


def summary_row(trajs: list[Trajectory], seconds: float) -> dict[str, Any]:
    """Generation totals: success rate, turns, tokens, cost, time."""
    n = len(trajs)
    return {
        "n": n,
        "success_rate": sum(t.reward for t in trajs) / n if n else 0.0,
        "turns_mean": sum(len(t.turns) for t in trajs) / n if n else 0.0,
        "prompt_tokens": sum(t.meta.get("prompt_tokens", 0) for t in trajs),
        "completion_tokens": sum(t.meta.get("completion_tokens", 0) for t in trajs),
        "cost_usd": sum(t.meta.get("cost_usd", 0.0) for t in trajs),
        "seconds": seconds,
    }
