"""Expert iteration: K rounds of sampling the agent, keeping its rewarded episodes and fine-tuning on them."""

from __future__ import annotations

import argparse
from dataclasses import replace

from fireact.commands.common import COUNT, config_problem, read_config
from fireact.errors import FireactError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", required=True, help="YAML with the fields of fireact.modules.expert_iteration.ExpertIteration"
    )
    p.add_argument("--out", help="override the config's out dir")
    p.add_argument("--rounds", type=COUNT, help="override the config's number of rounds")
    p.add_argument(
        "--hindsight",
        action="store_true",
        help="also train on hindsight finishes of unsolved questions (config: hindsight)",
    )
    p.add_argument(
        "--env", help="the pool's environment (a built-in, a .py file or a module); validation: the config's"
    )
    p.add_argument("--env-args", help="its load_environment keyword arguments, a JSON object")
    p.add_argument(
        "--gold-path",
        action="store_true",
        help="also train on gold-path demonstrations of unsolved wiki questions (config: gold_path)",
    )


def run(args: argparse.Namespace) -> int:
    read_config(args.config)  # names the file (and line) when it cannot be read or is not YAML, at once
    from jsonargparse import ArgumentParser

    from fireact.modules.expert_iteration import ExpertIteration  # lazy: torch/Lightning, not for --help

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(ExpertIteration)
    try:
        cfg = parser.parse_path(args.config)
    except Exception as e:  # noqa: BLE001  (jsonargparse reports the key and value in its message)
        raise FireactError(f"--config {args.config}: {config_problem(str(e))}") from None
    fields = parser.instantiate_classes(cfg).as_dict()
    overrides = {k: v for k, v in (("out", args.out), ("rounds", args.rounds)) if v is not None}
    if args.hindsight:
        overrides["hindsight"] = True
    if args.gold_path:
        overrides["gold_path"] = True
    if args.env is not None:
        overrides["pool"] = replace(fields["pool"], env=args.env, env_args=args.env_args)
    elif args.env_args is not None:
        raise FireactError("--env-args needs --env")
    loop = ExpertIteration(**{**fields, **overrides})
    for record in loop.run():
        print(f"round {record['round']}: kept {record['kept']} of {record['episodes']} "
              f"({record.get('hindsight', 0)} by hindsight, {record.get('gold_path', 0)} gold paths), val EM {record['val_em']:.3f}")  # fmt: skip
    return 0
