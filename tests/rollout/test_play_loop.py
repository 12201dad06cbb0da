"""The one play loop: examples of several tasks in one run, each prompted and scored as its own task,
the trajectories in example order, whatever the runner."""

from __future__ import annotations

import pytest

from fireact.data.tasks import Example
from fireact.lm.base import Completion
from fireact.rollout.config import RolloutConfig
from fireact.rollout.runners import run_rollouts


class Answerer:
    """An LM that answers "yes, it is" to yes/no questions and "Paris" to the rest, after one search."""

    name, continuous, concurrency, prompt_style = "answerer", False, 3, None

    def __init__(self, batched: bool):
        self.batched = batched

    def reset_cache(self) -> None:
        pass

    def complete(self, prompts, stop, max_tokens, temperature=0.0, stop_after_action=False):
        out = []
        for p in prompts:
            if p[-1]["content"].startswith("Observation"):
                answer = "yes, it is" if "Is " in p[0]["content"] else "Paris"
                out.append(Completion(f"Thought: done.\nAction: finish[{answer}]"))
            else:
                out.append(Completion("Thought: look.\nAction: search[it]"))
        return out


@pytest.mark.parametrize("batched", [True, False])
def test_examples_of_several_tasks_play_in_one_run(batched):
    examples = [
        Example("1", "Capital of France?", "Paris", "hotpotqa"),
        Example("2", "Is Paris in France?", "yes", "strategyqa"),
        Example("3", "Capital of Italy?", "Rome", "hotpotqa"),
        Example("4", "Is Rome in France?", "no", "strategyqa"),
    ]
    trajs = run_rollouts(Answerer(batched), lambda q: "a page", examples, RolloutConfig(max_turns=3, batch_size=3))
    assert [(t.task, t.id, t.prediction, t.em) for t in trajs] == [
        ("hotpotqa", "1", "Paris", 1.0), ("strategyqa", "2", "yes, it is", 1.0),  # StrategyQA's yes/no scorer
        ("hotpotqa", "3", "Paris", 0.0), ("strategyqa", "4", "yes, it is", 0.0),
    ]  # fmt: skip
    assert all(t.meta["few_shot"] == 0 and len(t.turns) == 2 for t in trajs)
