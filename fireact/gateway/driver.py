"""Run a user's agent program over examples through a recording gateway (`fireact rollouts --agent`,
and GRPO's sampler over a program): the program is a file defining

    async def run(example, base_url) -> float | None

that answers `example` (a `fireact.data.tasks.Example`: id, question, answer, task) with an OpenAI
client whose base URL is `base_url`, and returns its reward (None: unscored). Each example is run
`group_size` times, each run its own episode (`TASK-ID-K` under a run prefix), closed with the
reward it returned; a run that raises is kept unscored with its error. The episodes come back as
trajectories labelled with their example, so a group is the G runs of one example.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fireact.data.recordings import read_recording
from fireact.data.tasks import Example
from fireact.data.trajectory import Trajectory
from fireact.errors import FireactError
from fireact.gateway.client import episode_url, finish_episode
from fireact.gateway.recorder import Recorder
from fireact.gateway.routes import make_gateway

AgentRun = Callable[[Example, str], Awaitable[float | None]]


def load_agent(path: str | Path) -> AgentRun:
    """The `run` coroutine function of a program file; FireactError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FireactError(f"--agent {path}: no such file")
    spec = importlib.util.spec_from_file_location(f"fireact_agent_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename != str(path):
            tb = tb.tb_next
        line = f":{tb.tb_lineno}" if tb is not None and tb.tb_frame.f_code.co_filename == str(path) else ""
        raise FireactError(f"--agent {path}{line}: importing it raised {type(e).__name__}: {e}") from None
    run = getattr(module, "run", None)
    if not inspect.iscoroutinefunction(run):
        raise FireactError(f"--agent {path}: define `async def run(example, base_url) -> reward`")
    return run


@dataclass
class EpisodeRun:
    episode: str
    example: Example
    reward: float | None = None
    error: str | None = None
    seconds: float = 0.0


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", text).strip("._")[:40] or "x"


async def drive(run: AgentRun, examples: list[Example], gateway: str, group_size: int, concurrency: int,
                prefix: str) -> list[EpisodeRun]:  # fmt: skip
    """Every example `group_size` times, at most `concurrency` episodes at once, each closed."""
    gate = asyncio.Semaphore(concurrency)

    async def one(example: Example, k: int) -> EpisodeRun:
        ep = EpisodeRun(f"{prefix}-{_safe(example.task)}-{_safe(example.id)}-{k}", example)
        url = episode_url(gateway, ep.episode)
        async with gate:
            started = time.perf_counter()
            try:
                reward = await run(example, url)
                if reward is not None and (isinstance(reward, bool) or not isinstance(reward, int | float)):
                    raise TypeError(f"run returned {type(reward).__name__}, not a number or None")
                ep.reward = None if reward is None else float(reward)
            except Exception as e:  # the program's own failure: its episode stays, unscored
                ep.error = f"{type(e).__name__}: {e}"
            ep.seconds = time.perf_counter() - started
        if ep.reward is not None:
            info = {"task": example.task, "id": example.id, "answer": example.answer, "sample": k}
            try:
                await asyncio.to_thread(finish_episode, url, ep.reward, info)
            except FireactError as e:
                ep.error = str(e)
        return ep

    return list(await asyncio.gather(*(one(e, k) for e in examples for k in range(group_size))))


def run_program(chat: Any, run: AgentRun, examples: list[Example], group_size: int, record_dir: str | Path,
                concurrency: int = 16) -> tuple[list[Trajectory], list[EpisodeRun]]:  # fmt: skip
    """The program's episodes through an in-process gateway in front of `chat` (a `ServedModel`:
    token-exact records, or an `UpstreamChat`), on a loopback port of its own, recorded under
    `record_dir`; their trajectories labelled with their examples."""
    server = make_gateway(chat, Recorder(record_dir, chat.name), port=0)
    thread = threading.Thread(target=server.serve_forever, name="fireact-gateway", daemon=True)
    thread.start()
    prefix = f"r{time.time_ns():x}"
    try:
        runs = asyncio.run(drive(run, examples, f"http://127.0.0.1:{server.server_address[1]}", group_size,
                                 concurrency, prefix))  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        server.close_service()  # episodes left open are written, unscored
    by_episode = {r.episode: r for r in runs}
    trajs = [t for t in read_recording(record_dir, quiet=True).trajectories if t.meta["episode"] in by_episode]
    for t in trajs:
        r = by_episode[t.meta["episode"]]
        t.task, t.id, t.answer = r.example.task, r.example.id, r.example.answer
        if r.error:
            t.meta["error"] = r.error
    failed = [r for r in runs if r.error]
    if failed:
        print(f"{len(failed)} of {len(runs)} program runs failed, e.g. {failed[0].episode}: {failed[0].error}",
              file=sys.stderr)  # fmt: skip
    return trajs, runs
