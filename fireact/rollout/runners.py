"""Run many agent episodes against an LM in an environment (or a search tool on the paper's tasks);
returns scored Trajectory records."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from typing import Any

from fireact.agent.methods import Episode, method_spec
from fireact.agent.prompts import few_shot_prefix, pick_exemplars
from fireact.data.prompt_style import Prompt, PromptStyle
from fireact.data.tasks import Example
from fireact.data.token_log import TokenTurn, start_turn
from fireact.data.trajectory import Trajectory, Turn
from fireact.env.builtin import task_environment
from fireact.env.environment import Environment
from fireact.errors import FireactError
from fireact.lm.base import LM
from fireact.rollout.config import EpisodeConfig
from fireact.rollout.engine import run_continuous
from fireact.rollout.job import RolloutJob
from fireact.rollout.progress import Progress, rich_progress
from fireact.tools.base import SearchTool


def _io_exemplars(exemplars: list[Trajectory]) -> list[Trajectory]:
    out = []
    for e in exemplars:
        copy = Trajectory(**{**e.__dict__, "turns": [Turn("", f"finish[{e.prediction}]", None)]})
        out.append(copy)
    return out


def resolve_style(fmt: str | None, lm: LM, protocol: str | None = None) -> PromptStyle:
    """An explicit format or protocol wins (with a warning when the model was trained on another);
    else the one saved with the model; else chat and react."""
    saved = lm.prompt_style or PromptStyle()
    for name, asked, trained in (("format", fmt, saved.format), ("protocol", protocol, saved.protocol)):
        if asked is not None and lm.prompt_style is not None and asked != trained:
            warnings.warn(f"{name} {asked!r} overrides the {trained!r} {name} {lm.name} was trained with", stacklevel=2)
    return PromptStyle(fmt or saved.format, saved.base_model, protocol or saved.protocol)


def _prompt_prefix(
    cfg: EpisodeConfig, env: Environment, examples: list[Example], style: PromptStyle,
    pool: list[Trajectory] | None, prompt_text: str | None,
) -> tuple[Prompt, int | str]:  # fmt: skip
    """(the text before each question of `task`, what `meta.few_shot` records): the user's prompt
    file, K exemplars of the task drawn from `pool` (never one of the asked questions), or nothing."""
    if prompt_text is not None:
        return few_shot_prefix(cfg.method, [], prompt_text, style.format), "prompt_file"
    exemplars: list[Trajectory] = []
    if cfg.few_shot > 0:
        asked = {e.question for e in examples}
        exemplars = pick_exemplars(pool or [], env.name, cfg.few_shot, cfg.exemplar_seed, asked, cfg.method)
        if cfg.method == "io":
            exemplars = _io_exemplars(exemplars)
    instruction = "" if env.schemas() is not None else None  # an environment's tools are in its system text
    return few_shot_prefix(cfg.method, exemplars, None, style.format, instruction), len(exemplars)


def _record_meta(lm: LM, tool: SearchTool | Environment, style: PromptStyle, shots: int | str) -> dict[str, Any]:
    """What every record of a run says about how it was played."""
    meta = {"lm": lm.name, "tool": getattr(tool, "name", "search"), "few_shot": shots, "fmt": style.format}
    return meta if style.protocol == "react" else {**meta, "protocol": style.protocol}  # react records as before


def environments(world: SearchTool | Environment, tasks: Iterable[str]) -> dict[str, Environment]:
    """The environment that plays and scores each task's examples: the run's environment for its own
    examples, else the paper task's world with the search tool."""
    envs: dict[str, Environment] = {}
    for name in dict.fromkeys(tasks):
        if isinstance(world, Environment):
            if name != world.name:
                raise FireactError(f"an example of task {name!r} in a run of environment {world.name!r}")
            envs[name] = world
        else:
            envs[name] = task_environment(name, world)
    return envs


def run_rollouts(
    lm: LM,
    tool: SearchTool | Environment,
    examples: Iterable[Example],
    config: EpisodeConfig | None = None,
    exemplar_pool: list[Trajectory] | None = None,
    prompt_text: str | None = None,
    progress: Progress | str | None = None,
    on_done: Callable[[Trajectory], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    source: str = "",
) -> list[Trajectory]:
    """The one play loop: `config.samples` episodes per example (G samples side by side), examples of
    any tasks in one run (each scored and prompted as its `task`), trajectories in example order.
    `tool`: an Environment (its tools, instructions and reward), or a search tool for the paper's tasks.

    `config.few_shot`=K draws K successful exemplars of each task from `exemplar_pool` (seeded); a
    `prompt_text` replaces them; both 0/None is zero-shot (what fine-tuned models are trained on).
    `on_done` sees each trajectory as soon as it ends; `should_stop` (checked before each new episode
    starts) ends a run early, e.g. on a cost cap. `progress`: a callback (done, total), "rich" or None.
    """
    cfg = config or EpisodeConfig()
    if cfg.record_tokens and not (lm.continuous or lm.returns_tokens):
        raise FireactError(f"record_tokens needs a backend that returns tokens (hf:, rollout servers), not {lm.name}")
    examples, results = list(examples), {}
    style = resolve_style(cfg.format, lm, cfg.protocol)
    tasks = environments(tool, (e.task for e in examples))
    prefixes, meta = {}, {}  # per task: the text before its questions, its records' meta
    for name in tasks:
        asked = [e for e in examples if e.task == name]
        prefixes[name], shots = _prompt_prefix(cfg, tasks[name], asked, style, exemplar_pool, prompt_text)
        meta[name] = _record_meta(lm, tool, style, shots)
    plays = [(ex, j) for ex in examples for j in range(cfg.samples)]  # G samples of a question, side by side
    lm.reset_cache()  # a model being trained changes between runs: never reuse its old KV
    ctx = rich_progress(f"{cfg.method} {', '.join(tasks)}") if progress == "rich" else nullcontext(progress)
    with ctx as report:

        def finish(i: int, ep: Episode) -> None:
            ex, sample = plays[i]
            t = ep.to_trajectory(source, {**meta[ex.task], "sample": sample} if cfg.samples > 1 else meta[ex.task])
            results[i] = t
            if on_done is not None:
                on_done(t)
            if report is not None:
                report(len(results), len(plays), sum(r.em for r in results.values()) / len(results))

        if report is not None:
            report(0, len(plays), 0.0)
        job = RolloutJob(
            plays,
            lambda play: Episode(
                play[0], (env := tasks[play[0].task]), cfg.method, style, prefixes[play[0].task], _max_turns(cfg, env)
            ),  # fmt: skip
            finish,
            should_stop or (lambda: False),
            method_spec(cfg.method, cfg.max_tokens, style.protocol),
            cfg,
        )
        play_job(lm, job)
    return [results[i] for i in sorted(results)]


def _max_turns(cfg: EpisodeConfig, env: Environment) -> int:
    return 1 if cfg.method in ("io", "cot") else env.max_turns or cfg.max_turns


def play_job(lm: LM, job: RolloutJob) -> None:
    """The runner for the backend: the continuous-batching engine (local HF), batched rounds, or threads."""
    if lm.continuous:
        run_continuous(lm, job)
    elif lm.batched:
        _run_batched(lm, job)
    else:
        _run_threaded(lm, job)


def _run_batched(lm: LM, job: RolloutJob) -> None:
    pending = job.pending()
    live: list[tuple[int, Episode]] = []
    while pending or live:
        while len(live) < job.config.batch_size and pending and not job.should_stop():
            i, ex = pending.popleft()
            live.append((i, job.new_episode(ex)))
        if not live:
            break
        completions = job.complete(lm, [ep.prompt() for _, ep in live])
        calls = [(ep, ep.act(c)) for (_, ep), c in zip(live, completions)]
        calls = [(ep, call) for ep, call in calls if call is not None]
        if any(getattr(call.tool, "blocking_io", False) for _, call in calls):  # the round's searches at once
            with ThreadPoolExecutor(len(calls)) as pool:
                results = list(pool.map(lambda x: x[1].run(), calls))
        else:
            results = [call.run() for _, call in calls]
        for (ep, _), result in zip(calls, results):
            ep.observe(*result)
        for i, ep in live:
            if ep.done:
                job.finish(i, ep)
        live = [(i, ep) for i, ep in live if not ep.done]


def _play(lm: LM, job: RolloutJob, ep: Episode) -> Episode:
    log: list[TokenTurn] = []
    while not ep.done:
        (c,) = job.complete(lm, [ep.prompt()])
        if job.config.record_tokens and c.error is None:  # the backend's exact tokens (`LM.returns_tokens`)
            turn = start_turn(log, c.prompt_ids)
            turn.generated, turn.logprobs = list(c.token_ids), list(c.logprobs)
            log.append(turn)
        ep.feed(c)
    if job.config.record_tokens:
        ep.token_turns = log
    return ep


def _run_threaded(lm: LM, job: RolloutJob) -> None:
    workers = max(1, lm.concurrency)
    pending = job.pending()
    running: dict[Future, int] = {}
    with ThreadPoolExecutor(workers) as pool:
        while pending or running:
            while len(running) < workers and pending and not job.should_stop():
                i, ex = pending.popleft()
                running[pool.submit(_play, lm, job, job.new_episode(ex))] = i
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                job.finish(running.pop(fut), fut.result())
