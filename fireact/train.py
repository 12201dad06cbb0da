"""`python -m fireact.train fit --config configs/X.yaml`: LightningCLI over FireActLM and a data module.

Subcommands fit / validate (and test / predict, unused), `--print_config`, and dotted overrides
(`--trainer.max_epochs 3`). The data module's tokenizer follows `model.model`. API keys are read
from the environment only, so the saved config.yaml and hparams never contain one. On CPU each
training process takes cores // processes threads unless OMP_NUM_THREADS is set (FireActLM.setup).
"""

from __future__ import annotations

import sys


def build_cli(args: list[str] | None = None, run: bool = True):
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.cli import LightningCLI

    import fireact.modules.deepspeed_cpu  # noqa: F401  (registers the deepspeed_cpu_* strategy names)
    from fireact.modules.lm_module import FireActLM

    class FireActCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("model.init_args.model", "data.init_args.tokenizer")

    return FireActCLI(
        FireActLM,
        LightningDataModule,
        subclass_mode_model=True,  # FireActLM (a plain `model:` block) or a subclass, e.g. GRPOLM by class_path
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def main(args: list[str] | None = None) -> int:
    from fireact.data.errors import FireactError

    try:
        build_cli(args)
    except FireactError as e:
        print(f"fireact.train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
