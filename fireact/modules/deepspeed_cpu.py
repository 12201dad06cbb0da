"""DeepSpeed ZeRO on CPU processes (gloo), so the sharded code paths are tested without a GPU.

Lightning's DeepSpeedStrategy refuses any accelerator but CUDA, although DeepSpeed itself runs on
CPU. This subclass skips Lightning's two CUDA-only checks (the accelerator check in
`setup_environment`, the device-index check in `setup_distributed`) and gives DeepSpeed an integer
cpu device (`deepspeed.initialize` reads `root_device.index`). Pick it in a config with
`trainer.strategy.class_path: fireact.modules.deepspeed_cpu.DeepSpeedCPUStrategy`, or by the
registered names `deepspeed_cpu_stage_2`, `deepspeed_cpu_stage_3`, `deepspeed_cpu_stage_3_offload`.
"""

from __future__ import annotations

import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, StrategyRegistry


class DeepSpeedCPUStrategy(DeepSpeedStrategy):
    strategy_name = "deepspeed_cpu"

    def setup_environment(self) -> None:
        # DeepSpeedStrategy.setup_environment only adds the CUDA check on top of DDPStrategy's.
        DDPStrategy.setup_environment(self)

    def setup_distributed(self) -> None:
        # As DeepSpeedStrategy.setup_distributed, minus `_validate_device_index_selection` (CUDA indices).
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    @property
    def root_device(self) -> torch.device:
        return torch.device("cpu", 0)  # DeepSpeed's CPU accelerator ignores the index but needs an int

    @classmethod
    def register_strategies(cls, strategy_registry) -> None:
        strategy_registry.register("deepspeed_cpu_stage_2", cls, description="DeepSpeed ZeRO-2 on CPU", stage=2)
        strategy_registry.register("deepspeed_cpu_stage_3", cls, description="DeepSpeed ZeRO-3 on CPU", stage=3)
        strategy_registry.register(
            "deepspeed_cpu_stage_3_offload",
            cls,
            description="DeepSpeed ZeRO-3 on CPU with optimizer offload (DeepSpeedCPUAdam)",
            stage=3,
            offload_optimizer=True,
        )


if "deepspeed_cpu_stage_2" not in StrategyRegistry:
    DeepSpeedCPUStrategy.register_strategies(StrategyRegistry)
