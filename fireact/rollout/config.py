"""One rollout configuration for every place that plays agent episodes, in four argument groups:
questions, agent, tool, sampling (GRPO takes all but the questions: `EpisodeConfig`).

`fireact eval` / `fireact generate` get their command-line options generated from these fields, and
the `RolloutValidation` callback takes the same dataclass from the training config (YAML), so an
option, its default and its help text are written once.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from fireact.data.paths import snapshot_path
from fireact.data.questions_file import read_questions
from fireact.data.tasks import TASKS, Example, get_task, select
from fireact.data.trajectory import METHODS
from fireact.env.environment import Environment
from fireact.env.loading import load_environment
from fireact.errors import FireactError
from fireact.tools.base import SearchTool
from fireact.tools.factory import make_tool
from fireact.tools.retrievers import RETRIEVERS
from fireact.tools.snapshot import SnapshotSearch


def _opt(default: Any, help: str, **argparse_kw: Any) -> Any:
    meta = {"help": help, **argparse_kw}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise FireactError(f"rollout option {message}")


def _post_init_next(obj: Any, cls: type) -> None:
    """Cooperative __post_init__: each argument group checks its own fields, then the next group."""
    nxt = getattr(super(cls, obj), "__post_init__", None)
    if nxt is not None:
        nxt()


@dataclass
class QuestionArgs:
    """Which questions: a task split's seeded selection, or a question file of your own."""

    tasks: list[str] = _opt(["hotpotqa"], f"task(s), of {', '.join(TASKS)}", flag="--task", nargs="+")
    split: str = _opt("dev", "task split")
    n: int | None = _opt(None, "questions per task (default: all)")
    seed: int | None = _opt(233, "question selection shuffle seed (the paper's: 233)")
    offset: int = _opt(0, "skip this many selected questions")
    answerable: bool = _opt(
        False,
        "only questions whose gold answer is in some snapshot snippet: offline, search cannot answer the "
        "rest (see `fireact data coverage`); selected before offset and n",
    )
    questions: str | None = _opt(
        None, "a question set of your own instead of the task's split: JSONL of {question, answer, id?}"
    )
    env: str | None = _opt(
        None,
        "an environment instead of a task: a built-in (hotpotqa, wiki, wikienv, company-db, ...), a Python file or "
        "a module defining load_environment(**kwargs) -> fireact.Environment; its examples, tools and reward",
    )
    env_args: Any = _opt(None, "the environment's load_environment keyword arguments, a JSON object")

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):  # a YAML scalar
            self.tasks = [self.tasks]
        _check(self.n is None or self.n > 0, "n must be positive")
        _check(self.env_args is None or self.env is not None, "env_args needs env")
        _post_init_next(self, QuestionArgs)

    def environment(self, data_dir: Path | None) -> Environment | None:
        """The environment asked for (loaded once per process), or None for the tasks."""
        return None if self.env is None else load_environment(self.env, self.env_args, data_dir)

    def task_names(self, data_dir: Path | None) -> list[str]:
        """The names the records of a run are filed under: the environment's, else the tasks."""
        env = self.environment(data_dir)
        return [env.name] if env is not None else list(self.tasks)

    def examples(self, task: str, data_dir: Path) -> list[Example]:
        """The paper's seeded question selection of one task (of its answerable questions if asked);
        of an environment, its examples in their order (a built-in's: its task's selection), then
        offset and n."""
        env = self.environment(data_dir)
        if env is not None:
            return select(env.example_list(), self.n, None, self.offset)
        spec = get_task(task)
        if self.questions is not None:
            return select(read_questions(Path(self.questions), task), self.n, None, self.offset)
        examples = spec.load(data_dir, self.split)
        seed = spec.selection_seed(self.split, self.seed)
        if self.answerable:
            if not spec.uses_f1:
                raise FireactError(
                    f"rollout option answerable: {task}'s answers are yes/no or a letter, not searchable"
                )
            snapshot = SnapshotSearch(snapshot_path(data_dir))
            examples = [e for e in select(examples, None, seed) if snapshot.holds(e.answer)]
            return select(examples, self.n, None, self.offset)
        return select(examples, self.n, seed, self.offset)

    def all_examples(self, data_dir: Path) -> list[Example]:
        """`examples` of every task, task after task (of the environment, when there is one)."""
        return [e for task in self.task_names(data_dir) for e in self.examples(task, data_dir)]

    def default_tool(self) -> str:
        """The tool measured best for these questions (docs/results/reproduction.md): the snapshot replays the
        searches GPT-4 made on the paper's questions (dev 100: EM 15 vs 10 with wiki); on any other
        question it has little to replay (wiki-eval: 8.0 vs 13.6, p=0.002)."""
        return "wiki" if self.questions is not None or self.split.startswith("wiki-") else "snapshot"


@dataclass
class AgentArgs:
    """How the agent plays: its method, prompt and turns."""

    method: str = _opt("react", "agent method", choices=METHODS)
    format: str | None = _opt(
        None, "prompt format (default: the one saved with the model, else chat)", choices=("chat", "alpaca")
    )
    protocol: str | None = _opt(
        None,
        "how a step calls a tool: react (FireAct's Action: search[...] text) or tool-calls (JSON tool calls, the "
        "OpenAI tools shape; chat format); default: the one saved with the model, else react",
        choices=("react", "tool-calls"),
    )
    max_turns: int = _opt(11, "agent steps per episode")
    max_tokens: int | None = _opt(None, "tokens per model step (default per method)")
    few_shot: int = _opt(0, "K exemplars from successful trajectories of the task")
    exemplar_seed: int = _opt(0, "seed of the few-shot exemplar draw")

    def __post_init__(self) -> None:
        _check(self.max_turns > 0, "max_turns must be positive")
        _post_init_next(self, AgentArgs)


@dataclass
class ToolArgs:
    """The search tool the agent calls."""

    tool: str | None = _opt(
        None,
        "search tool: snapshot (the paper's replayed Google snippets), wiki (a local Wikipedia passage corpus), "
        "serpapi, or a retrieval server's URL (http://HOST:PORT/retrieve, Search-R1's API); default: wiki on the "
        "wiki-* splits and --questions, snapshot on the paper's own splits",
    )
    search_k: int = _opt(1, "snippets (snapshot: BM25 when not cached) or passages (wiki, http) per search")
    corpus: str | None = _opt(
        None, "wiki: passage JSONL ({title, sentences} or {id, contents}); default: hotpotqa_wiki/paragraphs.jsonl"
    )
    retriever: str = _opt("bm25", "wiki: retriever", choices=RETRIEVERS)
    serpapi_cache: str | None = _opt(None, "serpapi record/replay cache (default: ~/.cache/fireact/serpapi.jsonl)")
    noise: str = _opt("none", "robustness study: noisy search", choices=("none", "nothing", "random"))
    noise_p: float = _opt(0.5, "probability that a search is replaced by noise")
    noise_seed: int = _opt(0, "seed of the search noise")

    def __post_init__(self) -> None:
        _check(self.search_k >= 1, "search_k must be at least 1")
        _post_init_next(self, ToolArgs)

    def make_tool(self, data_dir: Path | None, questions: QuestionArgs | None = None) -> SearchTool | Environment:
        """The environment of `questions` when they name one; else the asked search tool, else the one
        measured best for `questions` (the snapshot without them)."""
        env = questions.environment(data_dir) if questions is not None else None
        if env is not None:
            return env
        name = self.tool or (questions.default_tool() if questions is not None else "snapshot")
        return make_tool(
            name, data_dir, self.noise, self.noise_p, self.noise_seed, self.serpapi_cache, self.search_k,
            self.corpus, self.retriever,
        )  # fmt: skip


@dataclass
class SamplingArgs:
    """How tokens are drawn, and how many episodes run at once."""

    temperature: float = _opt(0.0, "sampling temperature (0: greedy)")
    top_p: float = _opt(1.0, "nucleus sampling: sample from the smallest token set of this probability")
    samples: int = _opt(1, "episodes per question (G; hf: each its own slot, sharing the prompt's KV)")
    sampling_seed: int = _opt(0, "seed of the sampling generator (hf): the same seed, the same episodes")
    record_tokens: bool = _opt(
        False, "hf: keep each episode's exact token ids and log-probs (token_turns) for on-policy training"
    )
    batch_size: int = _opt(8, "episodes in flight (hf: decode slots; openai: parallel requests)")

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1 and self.samples >= 1, "batch_size and samples must be at least 1")
        _check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        _post_init_next(self, SamplingArgs)


@dataclass
class EpisodeConfig(SamplingArgs, ToolArgs, AgentArgs):
    """Everything that decides an episode but the LM and the questions (GRPO's rollouts: its
    questions come from the DataModule)."""


GROUPS = {"questions": QuestionArgs, "agent": AgentArgs, "tool": ToolArgs, "sampling": SamplingArgs}


@dataclass
class RolloutConfig(EpisodeConfig, QuestionArgs):
    """Which questions, which agent, which tool, how sampled: everything that decides a run but the LM."""

    def make_tool(self, data_dir: Path | None, questions: QuestionArgs | None = None) -> SearchTool | Environment:
        return super().make_tool(data_dir, questions or self)

    def tool_name(self) -> str:
        return self.tool or self.default_tool()

    # -- command line ---------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, **defaults: Any) -> None:
        """One option per field (`--max-turns` for max_turns), one help section per argument group;
        `defaults` override per command."""
        for title, group_cls in GROUPS.items():
            group = parser.add_argument_group(title, group_cls.__doc__)
            for f in fields(group_cls):
                _add_option(group, f, defaults)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RolloutConfig:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def _add_option(group: Any, f: Any, defaults: dict[str, Any]) -> None:
    meta = dict(f.metadata)
    flag = meta.pop("flag", "--" + f.name.replace("_", "-"))
    default = defaults.get(f.name, f.default if f.default_factory is MISSING else f.default_factory())
    if f.type == "bool":
        group.add_argument(flag, dest=f.name, action="store_true", default=default, **meta)
        return
    kind = next((t for t in (int, float) if f.type in (t.__name__, f"{t.__name__} | None")), str)
    group.add_argument(flag, dest=f.name, type=kind, default=default, **meta)
