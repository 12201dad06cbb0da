"""How strong GRPO's teacher term is against its policy term at the start (issue 26), to set
`gold_path_coef` by measurement rather than by guess.

From the SFT agent, with the GRPO recipe of configs/on_policy/quickstart_wiki_grpo.yaml, plays
--batches steps' worth of wiki-train questions (8 x G=4, as a training step does, no update) and
prints, per batch, the gradient norm of the policy loss and of the gold-path demonstrations' SFT
loss (coefficient 1), each alone; their ratio is the coefficient at which the two pull equally.

    python experiments/grpo_teacher_scale.py [--batches 2]
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from types import SimpleNamespace

import torch

from fireact.data.paths import resolve_data_dir
from fireact.modules.grpo import GRPOLM, advantage_rows
from fireact.modules.grpo_loss import group_advantages
from fireact.modules.questions import QuestionDataModule
from fireact.rollout.config import EpisodeConfig, RolloutConfig
from fireact.rollout.gold_path import supporting_titles


def grad_norm(module: GRPOLM) -> float:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--adapter", default="runs/quickstart/adapter")
    args = parser.parse_args()
    torch.manual_seed(233)
    data = QuestionDataModule(pool=RolloutConfig(tasks=["hotpotqa"], split="wiki-train"), seed=233)
    data.setup("fit")
    module = GRPOLM(
        model="smollm2-135m", init_adapter=args.adapter, lora_dropout=0.0, group_size=4, reward="f1",
        seen_bonus=0.25, format_penalty=0.5, gold_path_coef=1.0,
        rollouts=EpisodeConfig(tool="wiki", temperature=0.8, max_turns=8, batch_size=32, sampling_seed=233),
    )  # fmt: skip
    module._trainer = SimpleNamespace(datamodule=data, world_size=1, global_rank=0, global_step=0, strategy=None)
    module.manual_backward = lambda loss: loss.backward()  # no strategy here: a plain backward
    module.configure_model()
    module._titles = supporting_titles(resolve_data_dir(None), "wiki-train")
    questions = random.Random(233).sample(data.questions, 8 * args.batches)
    for b in range(args.batches):
        trajs, rewards, groups = module.scored_groups(questions[8 * b : 8 * (b + 1)], defaultdict(float))
        rows, adv = advantage_rows(trajs, groups, group_advantages(rewards, groups))
        teacher, teacher_tokens = module.gold_path_rows(trajs)
        stats: dict = defaultdict(float)
        module.zero_grad()
        module._policy_loss(rows, adv, max(sum(r.num_trained for r in rows), 1), stats, {})
        policy = grad_norm(module)
        module.zero_grad()
        module._gold_path_loss(teacher, teacher_tokens, stats)
        gold = grad_norm(module)
        module.zero_grad()
        print(json.dumps({"batch": b, "policy_rows": len(rows), "gold_paths": len(teacher), "policy_grad_norm": policy,
                          "gold_path_grad_norm": gold, "ratio": policy / gold if gold else None}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
