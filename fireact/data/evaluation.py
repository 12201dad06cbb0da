"""Re-scoring trajectories against gold answers and summarising them like the paper's tables."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from dataclasses import asdict, dataclass

from fireact.data.react_grammar import parse_action
from fireact.data.scoring import normalize_answer
from fireact.data.tasks import Example, Task
from fireact.data.trajectory import Trajectory, question_key


@dataclass
class Summary:
    em: float  # mean EM over episodes; a missing question counts as G wrong episodes
    f1: float
    n: int  # episodes scored
    expected: int  # questions expected: missing ones count as wrong
    turns_mean: float  # actions per episode
    turns_std: float
    format_errors: int  # episodes that ended without a well-formed finish
    format_error_rate: float
    questions: int = 0  # distinct questions among the episodes
    samples: int = 1  # G: the most episodes any question has
    pass_at_g: float = 0.0  # questions with some episode right / expected (= em when G is 1)
    maj_at_g: float = 0.0  # questions whose most frequent normalised answer is right / expected
    same_reward: float = 0.0  # share of questions whose episodes all got one reward (no GRPO gradient)
    reward: float | None = None  # mean environment reward, where the records carry one (else EM is it)

    def to_dict(self) -> dict:
        return asdict(self)


def rescore(records: list[Trajectory], task: Task, examples: dict[str, Example]) -> list[Trajectory]:
    """Score each record's own prediction against the task's gold (never a stored em field)."""
    for r in records:
        gold = examples[r.id].answer if r.id in examples else r.answer
        if gold is None:
            continue
        r.answer = gold
        s = task.score(r.prediction, gold)
        r.em, r.f1 = s.em, s.f1
    return records


def question_of(t: Trajectory) -> tuple[str, str]:
    """What groups a question's samples (and pairs two runs): its task and id, else its text."""
    return (t.task, t.id or t.question)


def by_question(records: list[Trajectory]) -> dict[tuple[str, str], list[Trajectory]]:
    groups: dict[tuple[str, str], list[Trajectory]] = {}
    for t in records:
        groups.setdefault(question_of(t), []).append(t)
    return groups


def majority_right(samples: list[Trajectory]) -> bool:
    """The most frequent normalised answer (ties: the first seen) is right; no answer at all is wrong.
    One sample is right when its reward says so (as every single-sample score always was)."""
    if len(samples) == 1:
        return samples[0].score >= 1.0
    votes = Counter(normalize_answer(t.prediction) for t in samples if t.prediction is not None)
    if not votes:
        return False
    best = max(votes.values())
    winner = next(a for a in votes if votes[a] == best)
    return any(t.score >= 1.0 for t in samples if t.prediction is not None and normalize_answer(t.prediction) == winner)


def summarize(records: list[Trajectory], expected: int | None = None) -> Summary:
    """EM and friends over episodes and questions. `expected` questions (default: those present);
    with G samples a question, EM is the mean over expected x G episodes, so it stays in [0, 1]."""
    groups = by_question(records)
    g = max((len(v) for v in groups.values()), default=1)
    questions = expected if expected is not None else len(groups)
    episodes = questions * g  # with one sample each and no `expected`, len(records)
    turns = [r.num_actions for r in records]
    errors = sum(1 for r in records if not r.finished)
    return Summary(
        em=sum(r.em for r in records) / episodes if episodes else 0.0,
        f1=sum(r.f1 for r in records) / episodes if episodes else 0.0,
        n=len(records),
        expected=questions,
        turns_mean=statistics.fmean(turns) if turns else 0.0,
        turns_std=statistics.stdev(turns) if len(turns) > 1 else 0.0,
        format_errors=errors,
        format_error_rate=errors / len(records) if records else 0.0,
        questions=len(groups),
        samples=g,
        pass_at_g=sum(any(t.score >= 1.0 for t in v) for v in groups.values()) / questions if questions else 0.0,
        maj_at_g=sum(majority_right(v) for v in groups.values()) / questions if questions else 0.0,
        same_reward=sum(len({t.score for t in v}) == 1 for v in groups.values()) / len(groups) if groups else 0.0,
        reward=sum(r.score for r in records) / episodes
        if episodes and any(r.reward is not None for r in records)
        else None,
    )


# -- the paper's analyses of a set of runs (`fireact report`) -----------------------------------------

ACTED_AS = ("cot", "react", "reflexion", "no action")


def acted_as(t: Trajectory) -> str:
    """The method an episode acted like, from what it did (not from what it was prompted with):
    a reflection among its thoughts -> reflexion; one turn that answered (finish) -> cot; no
    well-formed action at all -> "no action" (a format failure is no choice of method); else react.
    The paper's Table 4 reads a multi-method agent's choices this way."""
    if any(turn.thought.lstrip().lower().startswith("reflection") for turn in t.turns):
        return "reflexion"
    actions = [parse_action(turn.action) for turn in t.turns]
    if len(actions) == 1 and actions[0] and actions[0][0] == "finish":
        return "cot"
    return "react" if any(actions) else "no action"


@dataclass
class MethodShare:
    method: str
    episodes: int
    share: float
    em: float
    turns_mean: float
    turns_std: float


def method_choice(records: list[Trajectory]) -> list[MethodShare]:
    """Per method acted as: share of the episodes, EM among them, turns mean and std."""
    rows = []
    for m in ACTED_AS:
        mine = [t for t in records if acted_as(t) == m]
        s = summarize(mine)
        rows.append(
            MethodShare(m, len(mine), len(mine) / len(records) if records else 0.0, s.em, s.turns_mean, s.turns_std)
        )
    return rows


def _correct_by_question(records: list[Trajectory]) -> dict[tuple[str, str], bool]:
    """A question is right when its (majority) answer is: with one sample, that sample's reward. Keyed
    by id and text, not task, so two environments asked the same questions (the wiki world's search
    and its search/lookup actions) pair up."""
    return {(v[0].id, question_key(v[0].question)): majority_right(v) for v in by_question(records).values()}


def method_references(runs: dict[str, list[Trajectory]]) -> dict[str, float]:
    """The paper's two references from single-method runs on the same questions: an agent that picks a
    method uniformly at random per question (its expected EM) and the per-question oracle (right if
    any method's run was right). Only questions every run answered count."""
    correct = [_correct_by_question(r) for r in runs.values()]
    shared = set.intersection(*(set(c) for c in correct)) if correct else set()
    if not shared:
        return {"questions": 0, "random_method_em": 0.0, "oracle_em": 0.0}
    random_em = sum(sum(c[q] for c in correct) / len(correct) for q in shared) / len(shared)
    oracle = sum(any(c[q] for c in correct) for q in shared) / len(shared)
    return {"questions": len(shared), "random_method_em": random_em, "oracle_em": oracle}


def mcnemar(a: list[Trajectory], b: list[Trajectory]) -> dict[str, float]:
    """Paired exact McNemar test on the questions both runs answered: b-only right vs a-only right,
    two-sided binomial p-value (with 100 questions one question is one point: this says when a
    difference is within noise)."""
    ca, cb = _correct_by_question(a), _correct_by_question(b)
    shared = set(ca) & set(cb)
    only_a = sum(ca[q] and not cb[q] for q in shared)
    only_b = sum(cb[q] and not ca[q] for q in shared)
    n, k = only_a + only_b, min(only_a, only_b)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"questions": len(shared), "only_first": only_a, "only_second": only_b, "p_value": p}


def cost_row(records: list[Trajectory]) -> dict[str, float]:
    """Per episode: prompt tokens, generated tokens and seconds (the paper's Table 3 axes;
    with batched rollouts episodes overlap, so seconds are latency, not throughput)."""
    n = max(len(records), 1)
    return {
        "prompt_tokens": sum(t.meta.get("prompt_tokens", 0) for t in records) / n,
        "generated_tokens": sum(t.meta.get("completion_tokens", 0) for t in records) / n,
        "seconds": sum(t.meta.get("seconds", 0.0) for t in records) / n,
    }


# -- what an episode did: searches, whether the gold showed up, why it failed -------------------------

FAILURE_CLASSES = (
    "right",
    "no finish",  # ran out of turns or never wrote a well-formed finish
    "gold seen, not answered",  # the gold answer was in an observation; the agent answered otherwise
    "repeated a search",  # searched one query twice and never saw the gold
    "yes/no answered wrong",
    "wrong entity, gold never retrieved",
)


def searches(t: Trajectory) -> list[str]:
    """The queries of an episode's well-formed search actions, in order."""
    return [a[1] for turn in t.turns if (a := parse_action(turn.action)) and a[0] == "search"]


def contains_answer(text: str, answer: str) -> bool:
    """The normalised answer appears in the normalised text as whole words."""
    return f" {normalize_answer(answer)} " in f" {normalize_answer(text)} "


def gold_turn(t: Trajectory) -> int | None:
    """The first turn whose observation holds the gold answer (never for a yes/no or empty gold)."""
    if normalize_answer(t.answer or "") in ("", "yes", "no"):
        return None
    return next((i for i, turn in enumerate(t.turns) if contains_answer(turn.observation or "", t.answer)), None)


def gold_seen(t: Trajectory) -> bool:
    return gold_turn(t) is not None


def failure_class(t: Trajectory) -> str:
    """The first of FAILURE_CLASSES that fits the episode (each episode counted once)."""
    if t.em >= 1.0:
        return "right"
    if not t.finished:
        return "no finish"
    if gold_seen(t):
        return "gold seen, not answered"
    queries = [normalize_answer(q) for q in searches(t)]
    if len(set(queries)) < len(queries):
        return "repeated a search"
    if normalize_answer(t.answer or "") in ("yes", "no"):
        return "yes/no answered wrong"
    return "wrong entity, gold never retrieved"


def bootstrap_gain(a: list[Trajectory], b: list[Trajectory], resamples: int = 10_000, seed: int = 0) -> dict:
    """Paired bootstrap over the questions both runs answered: EM(b) - EM(a) and its 95% interval
    (percentiles of the resampled gains)."""
    ca, cb = _correct_by_question(a), _correct_by_question(b)
    diffs = [int(cb[q]) - int(ca[q]) for q in sorted(set(ca) & set(cb))]
    if not diffs:
        return {"questions": 0, "gain": 0.0, "low": 0.0, "high": 0.0}
    rng = random.Random(seed)
    n = len(diffs)
    gains = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    return {"questions": n, "gain": sum(diffs) / n, "low": gains[int(0.025 * resamples)],
            "high": gains[int(0.975 * resamples) - 1]}  # fmt: skip


def episode_stats(trajs: list[Trajectory]) -> dict:
    """EM, F1, format errors, searches per episode, how often the gold answer showed up in an
    observation (and how often the agent then answered right), and the failure classes."""
    s = summarize(trajs)
    seen = [t for t in trajs if gold_seen(t)]
    classes = Counter(failure_class(t) for t in trajs)
    return {"n": s.n, "em": s.em, "f1": s.f1, "format_errors": s.format_error_rate,
            "searches": sum(len(searches(t)) for t in trajs) / max(len(trajs), 1), "gold_seen": len(seen),
            "right_when_seen": sum(t.em >= 1.0 for t in seen),
            "classes": {c: classes[c] for c in FAILURE_CLASSES}}  # fmt: skip
