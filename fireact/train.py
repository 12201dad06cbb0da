"""`python -m fireact.train fit --config configs/X.yaml`: LightningCLI over FireActLM and a data module.

Subcommands fit / validate (and test / predict, unused), `--print_config`, and dotted overrides
(`--trainer.max_epochs 3`). The data module's tokenizer follows `model.model`. API keys are read
from the environment only, so the saved config.yaml and hparams never contain one. On CPU each
training process takes cores // processes threads unless OMP_NUM_THREADS is set (FireActLM.setup).
"""

from __future__ import annotations

import sys

from fireact.commands.common import config_problem, quiet_known_noise, read_config
from fireact.errors import FireactError, printable


def build_cli(args: list[str] | None = None, run: bool = True):
    # lazy: main() names a bad config file in 0.1 s, before Lightning and torch load (~5 s)
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    import fireact.modules.deepspeed_cpu  # noqa: F401  (registers the deepspeed_cpu_* strategy names)
    from fireact.modules.lm_module import FireActLM  # lazy, as above
    from fireact.modules.progress import use_step_progress_bar  # lazy, as above
    from fireact.modules.versions import SaveConfigAndVersions  # lazy, as above

    configs = config_files(sys.argv[1:] if args is None else args)

    class Parser(LightningArgumentParser):
        def error(self, message: str, ex: Exception | None = None):
            """One line naming the key, not the usage and a tree: where jsonargparse would exit, raise."""
            if not self.exit_on_error:  # a parser jsonargparse tries values with: it handles the error
                return super().error(message, ex)
            where = f"--config {', '.join(configs)}: " if configs else ""
            raise FireactError(where + config_problem(message))

    class FireActCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("model.init_args.model", "data.init_args.tokenizer")

        def instantiate_trainer(self, **kwargs):
            trainer = super().instantiate_trainer(**kwargs)
            use_step_progress_bar(trainer)
            return trainer

    return FireActCLI(
        FireActLM,
        LightningDataModule,
        subclass_mode_model=True,  # FireActLM (a plain `model:` block) or a subclass, e.g. GRPOLM by class_path
        subclass_mode_data=True,
        save_config_callback=SaveConfigAndVersions,
        save_config_kwargs={"overwrite": True},
        parser_class=Parser,
        args=args,
        run=run,
    )


def config_files(argv: list[str]) -> list[str]:
    """The --config / -c values that name files (a value may also be inline YAML or JSON)."""
    values = [b for a, b in zip(argv, argv[1:]) if a in ("-c", "--config")]
    values += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    return [v for v in values if not v.lstrip().startswith("{") and "\n" not in v]


def our_error(e: BaseException) -> FireactError | None:
    """The FireactError a config class raised, under jsonargparse's "Does not validate against any of
    the Union subtypes" wrapper (its message is the one to show)."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, FireactError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def main(args: list[str] | None = None) -> int:

    quiet_known_noise()
    configs = config_files(sys.argv[1:] if args is None else args)
    try:
        for path in configs:
            read_config(path)  # first: a bad file is named at once, before Lightning is imported
        build_cli(args)
    except ValueError as e:  # jsonargparse wraps what a class raised while instantiating it
        ours = our_error(e)
        if ours is None:
            raise
        where = f"--config {', '.join(configs)}: " if configs else ""
        print(f"fireact.train: error: {where}{printable(str(ours))}", file=sys.stderr)
        return 2
    except FireactError as e:
        print(f"fireact.train: error: {printable(str(e))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
