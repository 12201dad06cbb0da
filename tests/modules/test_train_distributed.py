"""Real multi-process training on CPU: DDP (gloo) and DeepSpeed ZeRO-2/3 with 2 processes each,
LoRA and full fine-tuning of a tiny model, launched as `python -m fireact.train fit --config ...`.

DeepSpeed JIT-compiles two ops on first use, cached in ~/.cache/torch_extensions: its shared-memory
comm op (deepspeed_shm_comm, every CPU run) and cpu_adam (ZeRO offload), ~1-3 min each. The cache is
rebuilt for every new virtualenv path (the include paths are part of its build hash), so a fresh CI
clone pays it once: zero2-offload took 18 s with the ops cached, 80-134 s while building them. `.ci/run`
starts that build in the background during its install; a test that needs an op waits for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import train_config, train_losses

ROOT = Path(__file__).resolve().parents[2]
ZERO = "fireact.modules.deepspeed_cpu.DeepSpeedCPUStrategy"
pytestmark = pytest.mark.slow(seconds=170)


def run_fit(out: Path, model_dir: str, finetune: str, strategy, lr: float) -> list[float]:
    config = train_config(out, model_dir, finetune, strategy=strategy, devices=2, max_steps=4, lr=lr)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.in.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "support")]),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "fireact.train", "fit", "--config", str(path)],
        env=env,
        cwd=out,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = train_losses(out)
    assert len(losses) == 4
    assert losses[-1] < losses[0], losses  # learning happened (same data seed on every rank layout)
    return losses


def only_ckpt(out: Path) -> Path:
    (path,) = (out / "ckpt").glob("*.ckpt")
    return path


@pytest.mark.parametrize(
    ("finetune", "strategy", "lr"),
    [
        ("lora", "ddp", 0.02),
        # offload: DeepSpeed refuses torch optimizers here, so this also runs FireActLM's DeepSpeedCPUAdam
        (
            "lora",
            {
                "class_path": ZERO,
                "init_args": {"stage": 2, "offload_optimizer": True, "exclude_frozen_parameters": True},
            },
            0.02,
        ),
        ("lora", {"class_path": ZERO, "init_args": {"stage": 3, "exclude_frozen_parameters": True}}, 0.02),
    ],
    ids=["ddp", "zero2-offload", "zero3"],
)
def test_lora_two_processes(finetune, strategy, lr, tmp_path, tiny_model_dir):
    run_fit(tmp_path, tiny_model_dir, finetune, strategy, lr)
    from peft import PeftModel
    from test_train_runs import reference_logits
    from transformers import AutoModelForCausalLM

    from fireact.modules.export import export, load_checkpoint

    ckpt = load_checkpoint(only_ckpt(tmp_path))  # DeepSpeed dirs are consolidated from their shards
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])  # adapter-only, also under ZeRO
    out = export(only_ckpt(tmp_path), tmp_path / "export")
    ids = torch.randint(100, 200, (2, 16), generator=torch.Generator().manual_seed(3))
    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out).eval()
    with torch.no_grad():
        torch.testing.assert_close(adapter(input_ids=ids).logits, reference_logits(ckpt, ids), atol=1e-5, rtol=1e-4)


def test_full_ddp_and_zero3_agree_and_zero3_exports(tmp_path, tiny_model_dir):
    """Same seed, same data: ZeRO-3's sharded full fine-tune follows DDP's loss curve, and the exported
    consolidated ZeRO-3 checkpoint gives the DDP checkpoint's logits."""
    from transformers import AutoModelForCausalLM

    from fireact.errors import FireactError
    from fireact.modules.export import export, load_checkpoint

    ddp = run_fit(tmp_path / "ddp", tiny_model_dir, "full", "ddp", 0.003)
    zero3 = run_fit(tmp_path / "zero3", tiny_model_dir, "full", {"class_path": ZERO, "init_args": {"stage": 3}}, 0.003)
    torch.testing.assert_close(torch.tensor(zero3), torch.tensor(ddp), atol=2e-3, rtol=1e-3)
    assert only_ckpt(tmp_path / "zero3").is_dir()  # sharded DeepSpeed checkpoint

    out = export(only_ckpt(tmp_path / "zero3"), tmp_path / "export")
    ids = torch.randint(100, 200, (2, 16), generator=torch.Generator().manual_seed(2))
    from test_train_runs import reference_logits

    expected = reference_logits(only_ckpt(tmp_path / "ddp"), ids)
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(out).eval()(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-3)

    # the folder copied without its shards (a common rsync of "the checkpoint"): one clear message
    partial = shutil.copytree(only_ckpt(tmp_path / "zero3"), tmp_path / "partial")
    for shard in partial.glob("*/*optim_states.pt"):
        shard.unlink()
    with pytest.raises(FireactError, match="lacks the DeepSpeed shards"):
        load_checkpoint(partial)
