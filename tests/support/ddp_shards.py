"""Run by test_datamodule.py: a real 2-process DDP fit that records which examples each rank trained on.

python tests/ddp_shards.py TINY_MODEL_DIR DATA_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from transformers import AutoModelForCausalLM

from fireact.data.batching import model_inputs
from fireact.modules.datamodule import TrajectoryDataModule


class RecordingLM(pl.LightningModule):
    def __init__(self, model_dir: str, out: Path):
        super().__init__()
        self.model = AutoModelForCausalLM.from_pretrained(model_dir)
        self.out, self.seen = out, []

    def training_step(self, batch, _):
        self.seen.append(batch["example_index"].tolist())
        return self.model(**model_inputs(batch, self.model)).loss

    def on_train_end(self):
        (self.out / f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


if __name__ == "__main__":
    model_dir, data_dir, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    pl.seed_everything(0)
    dm = TrajectoryDataModule(
        tokenizer=model_dir,
        sources=["finetune/gpt_format/multitask_multimethod.jsonl"],
        data_dir=data_dir,
        mix={"hotpotqa/cot": 24},
        val_size=0,
        batch_size=2,
        cutoff=256,
        packing=True,
        run_dir=str(out),
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=1,
        default_root_dir=str(out),
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
    )
    trainer.fit(RecordingLM(model_dir, out), datamodule=dm)
