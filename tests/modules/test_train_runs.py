"""Single-process training runs of a tiny model: adapter-only checkpoints, exact resume, NaN stop,
export (adapter and merged) with the checkpoint's logits, push to a local Hub stand-in, no secrets saved."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from faults import refused_url
from train_helpers import read_metrics, train_config, train_losses

from fireact import retry

FAKE_KEY = "sk-fake-0123456789abcdef-must-not-be-saved"


def fit(tmp: Path, config: dict, *extra: str) -> int:
    from fireact.train import main

    path = tmp / "config.in.yaml"
    path.write_text(yaml.safe_dump(config))
    return main(["fit", "--config", str(path), *extra])


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    """6 LoRA steps, checkpoints at steps 3 and 6, with API keys present in the environment."""
    out = tmp_path_factory.mktemp("lora-run")
    mp = pytest.MonkeyPatch()
    for name in ("OPENAI_API_KEY", "SERPAPI_API_KEY", "HF_TOKEN"):
        mp.setenv(name, FAKE_KEY)
    config = train_config(out, tiny_model_dir, "lora", max_steps=6, lr=0.02, **{"model.lora_dropout": 0.0})
    config["trainer"]["callbacks"][0]["init_args"]["every_n_train_steps"] = 3
    config["data"]["init_args"].update(n_train=24, batch_size=4)  # 6 steps = 1 epoch: checkpoints at epoch ends
    config["trainer"]["max_steps"] = 12
    mp.setattr(sys, "argv", ["fireact.train"])
    assert fit(out, config) == 0
    mp.undo()
    return out


def ckpt_at(out: Path, step: int) -> Path:
    (path,) = (out / "ckpt").glob(f"*step={step}.ckpt")
    return path


def test_lora_loss_decreases_and_logs(lora_run):
    losses = train_losses(lora_run)
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    rows = read_metrics(lora_run)
    logged = set().union(*rows)
    assert {
        "train/loss",
        "val/loss",
        "lr",
        "train/tokens_per_sec",
        "train/trained_tokens_per_sec",
        "train/padding_frac",
    } <= logged
    pad = [r["train/padding_frac"] for r in rows if "train/padding_frac" in r]
    assert all(0.0 <= p < 0.6 for p in pad) and max(pad) > 0  # the helper pads rows to 32 tokens
    tps = [r["train/tokens_per_sec"] for r in rows if "train/tokens_per_sec" in r]
    trained = [r["train/trained_tokens_per_sec"] for r in rows if "train/trained_tokens_per_sec" in r]
    assert all(t > 0 for t in tps) and all(a < b for a, b in zip(trained, tps))  # prompts are masked


def test_lora_checkpoint_is_adapter_only(lora_run, tiny_model_dir):
    ckpt = torch.load(ckpt_at(lora_run, 12), weights_only=False)
    keys = list(ckpt["state_dict"])
    assert keys and all("lora_" in k for k in keys)
    n_saved = sum(v.numel() for v in ckpt["state_dict"].values())
    from transformers import AutoModelForCausalLM

    n_base = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters())
    assert n_saved < n_base / 20
    assert ckpt["datamodule_hyper_parameters"]["tokenizer"] == tiny_model_dir  # linked from model.model


def test_saved_config_and_hparams_hold_no_key(lora_run):
    files = [*lora_run.rglob("*.yaml"), *lora_run.rglob("*.ckpt"), *lora_run.rglob("versions.json")]
    assert any(f.name == "config.yaml" for f in files) and any(f.name == "hparams.yaml" for f in files)
    (versions,) = [f for f in files if f.name == "versions.json"]  # the resolved stack, beside config.yaml
    assert (versions.parent / "config.yaml").is_file()
    assert json.loads(versions.read_text())["transformers"] == importlib.metadata.version("transformers")
    for f in files:
        assert FAKE_KEY.encode() not in f.read_bytes(), f


def test_resume_continues_identically(lora_run, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fireact.train"])
    config = yaml.safe_load(next(lora_run.rglob("config.yaml")).read_text())
    config["trainer"]["default_root_dir"] = str(tmp_path)
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path)
    config["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(tmp_path / "ckpt")
    assert fit(tmp_path, config, "--ckpt_path", str(ckpt_at(lora_run, 6))) == 0
    full, resumed = (torch.load(ckpt_at(d, 12), weights_only=False) for d in (lora_run, tmp_path))
    assert resumed["global_step"] == full["global_step"] == 12
    assert resumed["lr_schedulers"] == full["lr_schedulers"]
    for k, v in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v)
    for a, b in zip(full["optimizer_states"][0]["state"].values(), resumed["optimizer_states"][0]["state"].values()):
        torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"])
    assert train_losses(tmp_path) == train_losses(lora_run)[6:]


def test_validate_subcommand_reproduces_val_loss(lora_run, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fireact.train"])
    config = yaml.safe_load(next(lora_run.rglob("config.yaml")).read_text())
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    from fireact.train import main

    assert main(["validate", "--config", str(path), "--ckpt_path", str(ckpt_at(lora_run, 12))]) == 0
    (got,) = [r["val/loss"] for r in read_metrics(tmp_path) if "val/loss" in r]
    expected = [r["val/loss"] for r in read_metrics(lora_run) if "val/loss" in r][-1]  # after step 12
    assert got == pytest.approx(expected, rel=1e-5)


def reference_logits(ckpt: Path | dict, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits the Lightning way: rebuild the module from hparams, load the checkpoint's weights."""
    from fireact.modules.lm_module import FireActLM

    if not isinstance(ckpt, dict):
        ckpt = torch.load(ckpt, weights_only=False)
    module = FireActLM(**{k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")})
    module.configure_model()
    module.on_load_checkpoint(ckpt)
    module.load_state_dict(ckpt["state_dict"], strict=False)
    with torch.no_grad():
        return module.eval().model(input_ids=input_ids).logits


def test_export_adapter_and_merged_match_checkpoint(lora_run, tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fireact.cli import main

    ckpt = ckpt_at(lora_run, 12)
    ids = torch.randint(100, 200, (2, 16), generator=torch.Generator().manual_seed(1))
    expected = reference_logits(ckpt, ids)
    base_logits = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=ids).logits
    assert not torch.allclose(expected, base_logits, atol=1e-4)  # the adapter changed something

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "adapter")]) == 0
    assert not [w for w in caught if "is deprecated" in str(w.message)]  # known third-party notices filtered
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "adapter"
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(adapter(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)

    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "merged"), "--merge"]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-4, rtol=1e-4)
    assert AutoTokenizer.from_pretrained(tmp_path / "merged").pad_token_id is not None
    assert (tmp_path / "merged" / "generation_config.json").is_file()

    card = (tmp_path / "merged" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == tiny_model_dir and front["license"] and front["library_name"] == "transformers"
    assert "val/loss" in card and "| train/loss |" in card and "Data: sources" in card


def test_export_bad_checkpoint_is_one_clear_error(tmp_path, capsys):
    from fireact.cli import main

    bad = tmp_path / "nope.ckpt"
    bad.write_text("not a checkpoint")
    assert main(["export", "--ckpt", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]


def test_push_to_local_hub(lora_run, tmp_path, monkeypatch, capsys):
    """Push through huggingface_hub against a local stand-in (HF_ENDPOINT); the token comes from the env."""
    from hub_standin import HubStandIn

    from fireact.cli import main

    token = "hf_standin_token_0123456789"
    out = tmp_path / "out"
    with HubStandIn(tmp_path / "hub", token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", token)
        cmd = ["export", "--ckpt", str(ckpt_at(lora_run, 12)), "--out", str(out)]
        assert main([*cmd, "--push-to-hub", "me/fireact-tiny", "--private"]) == 0, capsys.readouterr().err
        assert hub.repos == {"me/fireact-tiny": {"private": True}}, hub.unhandled
        remote = tmp_path / "hub" / "me/fireact-tiny"
        pushed = {p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()}
        local = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
        assert pushed == local and "adapter_model.safetensors" in pushed
        for name in pushed:
            assert (remote / name).read_bytes() == (out / name).read_bytes()
            assert token.encode() not in (out / name).read_bytes()

        capsys.readouterr()
        monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_abcdef")
        assert main([*cmd, "--push-to-hub", "me/x"]) == 2
        err = capsys.readouterr().err
        assert "--push-to-hub me/x" in err and "hf_wrong_token_abcdef" not in err and "me/x" not in hub.repos
        assert "not a transient error: retrying will not help" in err  # a 401 is not retried

    # the case: the Hub cannot be reached (an httpx ConnectError traceback before)
    monkeypatch.setenv("HF_ENDPOINT", refused_url())
    monkeypatch.setattr(retry, "DELAYS", (0.0,))
    assert main([*cmd, "--push-to-hub", "me/fireact-tiny"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and "ConnectError" in err[0] and "transient: run again later" in err[0], err
    assert f"the exported folder {out} is complete: push it with `hf upload me/fireact-tiny {out}`" in err[0]


def test_nan_loss_stops_with_message_and_keeps_good_checkpoints(tmp_path, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fireact.train"])
    config = train_config(tmp_path, tiny_model_dir, "lora", max_steps=6)
    config["trainer"]["callbacks"][0]["init_args"]["every_n_train_steps"] = 1
    config["trainer"]["callbacks"].append({"class_path": "train_helpers.PoisonWeights", "init_args": {"at_step": 3}})
    assert fit(tmp_path, config) == 2
    err = capsys.readouterr().err
    assert "not finite" in err and "global step 3" in err
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert saved == ["epoch=0-step=1.ckpt", "epoch=0-step=2.ckpt", "epoch=0-step=3.ckpt"]  # none after the NaN
    last = torch.load(tmp_path / "ckpt" / saved[-1], weights_only=False)
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_bf16_with_gradient_checkpointing(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fireact.train"])
    config = train_config(tmp_path, tiny_model_dir, "lora", max_steps=4, lr=0.02)
    config["trainer"]["precision"] = "bf16-true"
    config["model"]["gradient_checkpointing"] = True
    assert fit(tmp_path, config) == 0
    losses = train_losses(tmp_path)
    assert len(losses) == 4 and losses[-1] < losses[0]
    ckpt = torch.load(ckpt_at(tmp_path, 4), weights_only=False)
    assert {v.dtype for v in ckpt["state_dict"].values()} == {torch.bfloat16}


def test_step_bounded_run_describes_its_steps():
    """Lightning shows a step-bounded run (max_epochs -1) as "Epoch 0/-2"."""
    from types import SimpleNamespace

    from fireact.modules.progress import StepProgressBar

    bar = StepProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=-1, max_steps=30)
    assert bar._get_train_description(0) == "Epoch 0 · 30 steps"
    bar._trainer = SimpleNamespace(max_epochs=3, max_steps=-1)
    assert bar._get_train_description(1).strip() == "Epoch 1/2"
