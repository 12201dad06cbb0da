"""Export a training checkpoint as a Hugging Face folder (LoRA adapter or merged/full model), optionally pushed to the Hub.

Accepts a Lightning .ckpt file (single process / DDP) or a DeepSpeed checkpoint directory (ZeRO-2/3
shards are consolidated to fp32 first). The folder holds the weights, tokenizer, generation config
and a model card (base model, data mix, metrics, license). Push uses huggingface_hub with the token
from $HF_TOKEN (and $HF_ENDPOINT for a private hub); no token is ever written.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fireact.data.prompt_style import PromptStyle
from fireact.errors import FireactError
from fireact.modules.lm_module import FireActLM
from fireact.retry import with_retries
from fireact.secrets import redact

# Base-model licenses of the families in configs/ (model cards must name one).
LICENSES = {"codellama": "llama2", "llama-2": "llama2", "llama2": "llama2", "smollm": "apache-2.0"}


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint dict with a full `state_dict`; DeepSpeed shards are consolidated."""
    import torch

    if not path.exists():
        raise FireactError(f"--ckpt {path}: no such file or directory")
    if path.is_dir():
        if not (path / "latest").is_file():
            raise FireactError(f"--ckpt {path}: a directory but not a DeepSpeed checkpoint (no 'latest' file)")
        return consolidate_deepspeed(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001  (pickle / zip errors of a non-checkpoint file)
        raise FireactError(f"--ckpt {path}: not a Lightning checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise FireactError(f"--ckpt {path}: not a FireActLM checkpoint (no state_dict / hyper_parameters)")
    hp = ckpt["hyper_parameters"]
    if not isinstance(ckpt["state_dict"], dict) or not isinstance(hp, dict) or not isinstance(hp.get("model"), str):
        raise FireactError(
            f"--ckpt {path}: not a FireActLM checkpoint (state_dict and hyper_parameters must be mappings, "
            "hyper_parameters naming the model)"
        )
    return ckpt


def consolidate_deepspeed(path: Path) -> dict[str, Any]:
    """ZeRO shards -> one fp32 Lightning checkpoint dict; a folder copied without its shards says so."""
    import torch
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    tag = (path / "latest").read_text().strip()
    if not list((path / tag).glob("*model_states.pt")) or not list((path / tag).glob("*optim_states.pt")):
        raise FireactError(
            f"--ckpt {path}: its 'latest' file names tag {tag!r}, but {path / tag} lacks the DeepSpeed shards "
            "(*model_states.pt and *optim_states.pt, one per rank): copy the whole checkpoint folder"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "consolidated.ckpt"
        try:
            convert_zero_checkpoint_to_fp32_state_dict(path, out)
        except Exception as e:  # noqa: BLE001  (DeepSpeed raises bare FileNotFoundError/ValueError/pickle errors)
            raise FireactError(
                f"--ckpt {path}: cannot consolidate its DeepSpeed shards ({type(e).__name__}: {e})"
            ) from None
        return torch.load(out, map_location="cpu", weights_only=False)


def module_from_checkpoint(ckpt: dict[str, Any]):
    """Rebuild FireActLM from the checkpoint's hparams and load its (possibly adapter-only) weights."""
    import inspect

    known = set(inspect.signature(FireActLM.__init__).parameters)  # the architecture (GRPO's extras aside)
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if k in known}
    module = FireActLM(**hparams)
    module.configure_model()
    state = {k.removeprefix("_forward_module."): v for k, v in ckpt["state_dict"].items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected:
        raise FireactError(f"checkpoint has weights the model {hparams['model']!r} lacks, e.g. {unexpected[0]}")
    lost = module.trainable_state_keys() & set(missing)
    if lost or (hparams.get("finetune") == "full" and missing):
        raise FireactError(
            f"checkpoint lacks {len(lost or missing)} trained weights, e.g. {sorted(lost or missing)[0]}"
        )
    return module.eval()


def checkpoint_prompt_style(ckpt: dict[str, Any]) -> PromptStyle | None:
    """The style saved with the weights; for checkpoints older than that, the DataModule's format."""
    saved = (ckpt.get("fireact") or {}).get("prompt_style")
    if saved is not None:
        return PromptStyle.from_dict(saved, "checkpoint prompt_style")
    fmt = (ckpt.get("datamodule_hyper_parameters") or {}).get("format")
    return PromptStyle(fmt, ckpt["hyper_parameters"].get("model")) if fmt else None


def default_license(model_name: str) -> str:
    name = model_name.lower()
    return next((lic for key, lic in LICENSES.items() if key in name), "other")


def model_card(ckpt: dict[str, Any], merged: bool, license_id: str) -> str:
    hp = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    data = {k: v for k, v in (ckpt.get("datamodule_hyper_parameters") or {}).items() if not k.startswith("_")}
    metrics = (ckpt.get("fireact") or {}).get("metrics", {})
    lora = hp.get("finetune") == "lora"
    kind = (
        "LoRA adapter merged into the base weights" if lora and merged else "LoRA adapter" if lora else "full fine-tune"
    )
    front = {
        "base_model": hp.get("model"),
        "library_name": "peft" if lora and not merged else "transformers",
        "license": license_id,
        "tags": ["fireact", "language-agent", "react", "lora" if lora else "full-finetune"],
        "pipeline_tag": "text-generation",
    }
    lines = ["---", *[f"{k}: {json.dumps(v)}" for k, v in front.items()], "---", ""]
    lines += [
        f"# FireAct agent: {hp.get('model')} ({kind})",
        "",
        "Fine-tuned with [fireact](https://github.com/anchen1011/FireAct) (Chen et al. 2023, *FireAct: Toward Language",
        "Agent Fine-tuning*) on agent trajectories in ReAct format, loss on the agent's thoughts and actions only.",
        "",
        f"- Base model: `{hp.get('model')}`",
        f"- Fine-tuning: {kind}"
        + (
            f" (r={hp.get('lora_r')}, alpha={hp.get('lora_alpha')}, targets={hp.get('lora_target_modules')})"
            if lora
            else ""
        ),
        f"- Data: sources {data.get('sources', '?')}, mix {data.get('mix')}, format {data.get('format', '?')}, cutoff {data.get('cutoff', '?')}",
        f"- Training: {ckpt.get('global_step', '?')} optimizer steps, epoch {ckpt.get('epoch', '?')}, lr {hp.get('lr')}, warmup {hp.get('warmup')}, cosine schedule",
        f"- License: {license_id} (follows the base model's license)",
        "",
        "## Metrics at the checkpoint",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items())],
        "",
    ]
    return redact("\n".join(lines))


def export(ckpt_path: Path, out: Path, merge: bool = False, license_id: str | None = None) -> Path:
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(f"loading {ckpt_path}"):
        ckpt = load_checkpoint(ckpt_path)
        module = module_from_checkpoint(ckpt)
    lora = module.hparams.finetune == "lora"
    if merge and not lora:
        raise FireactError("--merge only applies to LoRA checkpoints (this one is a full fine-tune)")
    out.mkdir(parents=True, exist_ok=True)
    with console.status(f"writing {out}"):
        model = module.model.merge_and_unload() if lora and merge else module.model
        base = model.get_base_model() if lora and not merge else model
        base.config.use_cache = True  # training switched it off
        model.save_pretrained(out)
        module.tokenizer.save_pretrained(out)
        base.generation_config.save_pretrained(out)
        license_id = license_id or default_license(module.hparams.model)
        (out / "README.md").write_text(model_card(ckpt, merged=merge, license_id=license_id))
        style = checkpoint_prompt_style(ckpt)
        if style is not None:  # eval / serve / generate read it: the model is prompted as it was trained
            style.save(out)
        else:
            console.print("[yellow]the checkpoint names no prompt format: pass --format to fireact eval/serve")
    console.print(f"exported {'merged model' if merge else 'adapter' if lora else 'model'} to {out}")
    return out


def push(out: Path, repo_id: str, private: bool, repo_type: str = "model") -> str:
    """Upload `out` (already complete on disk) to the Hub; transient faults are retried, and a push
    that still fails says how to push the same folder again without re-exporting."""
    from huggingface_hub import HfApi

    token = os.environ.get("HF_TOKEN") or None
    # read at call time (huggingface_hub reads HF_ENDPOINT once at import); None -> its own defaults
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)

    def upload() -> str:
        url = api.create_repo(repo_id, private=True if private else None, exist_ok=True, repo_type=repo_type)
        api.upload_folder(folder_path=out, repo_id=repo_id, repo_type=repo_type, commit_message="fireact export")
        return str(url)

    try:
        return with_retries(upload, f"--push-to-hub {repo_id} ({api.endpoint})", secrets=(token,))
    except FireactError as e:
        again = f"hf upload {repo_id} {out}" + (" --repo-type dataset" if repo_type == "dataset" else "")
        raise FireactError(f"{e}; the exported folder {out} is complete: push it with `{again}`") from None
