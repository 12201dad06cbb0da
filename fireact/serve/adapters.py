"""LoRA adapters loaded into a running `fireact serve` (vLLM's `/v1/load_lora_adapter` surface).

Off unless the server was started with `--allow-adapter-loading DIR`: an endpoint that loads files by
path would otherwise hand callers the server's filesystem. An adapter is loaded only from a folder
under DIR (no `..`, no symlink leading out, no URL), only from safetensors (a pickled `.bin` can run
code), and only after its tensors' shapes are checked against the served model's layers, so a bad
adapter is refused with a message and the served weights stay as they were. Loading runs on the
engine thread between decode steps (`CompletionService.run_on_engine`), never under a forward.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fireact.serve.http_app import BadRequest

WEIGHTS = "adapter_model.safetensors"
BASE = "__base__"  # peft's name for "no adapter" in a batch that mixes adapters


class AdapterStore:
    """Adapters loaded at runtime, by name, each with a version that changes on every (re)load: a
    slot's cached KV is reused only for the same (name, version)."""

    def __init__(self, root: str | None, served_name: str, startup_adapter: bool):
        self.root = Path(root).resolve() if root else None
        self.served_name = served_name
        self.default = "default" if startup_adapter else BASE  # what the served name means to peft
        self.versions: dict[str, int] = {}
        self._count = 0

    def ref(self, model: str | None) -> tuple[str, int] | None:
        """The (adapter, version) a request's `model` asks for; None while no adapter was ever loaded
        (then requests run the model as it is). An unknown name is the served model, as before."""
        if not self.versions:
            return None
        if model in self.versions:
            return model, self.versions[model]
        return self.default, 0

    def resolve(self, given: Any) -> Path:
        """The adapter folder a request names, if it is safely inside the allowed root (BadRequest)."""
        if self.root is None:
            raise BadRequest("adapter loading is off: start fireact serve with --allow-adapter-loading DIR", status=404)
        if not isinstance(given, str) or not given or "://" in given:
            raise BadRequest("lora_path must be a folder under the allowed adapter directory", "lora_path")
        path = Path(given) if Path(given).is_absolute() else self.root / given
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise BadRequest(f"lora_path {given!r}: no such folder under the allowed directory", "lora_path") from None
        files = [real, real / "adapter_config.json", real / WEIGHTS]
        if not real.is_dir() or not all(f.exists() for f in files[1:]):
            raise BadRequest(f"lora_path {given!r}: expected a folder with adapter_config.json and {WEIGHTS}",
                             "lora_path")  # fmt: skip
        if not all(f.resolve().is_relative_to(self.root) for f in files):
            raise BadRequest(f"lora_path {given!r} is outside the allowed adapter directory", "lora_path")
        return real

    def check_name(self, name: Any, loading: bool) -> str:
        if (not isinstance(name, str) or name in (BASE, "default", self.served_name) or "." in name
                or name in "lora_"):  # fmt: skip
            raise BadRequest(f"lora_name must be a new name (not {self.served_name!r}, 'default', a part of 'lora_' "
                             "or one with a dot)", "lora_name")  # fmt: skip
        if not loading and name not in self.versions:
            raise BadRequest(f"no adapter named {name!r} is loaded", "lora_name", status=404)
        return name

    def load(self, lm: Any, name: str, folder: Path) -> None:
        """Load (or reload) `name` from `folder` into the served model; runs on the engine thread.
        A reload is checked by loading under a scratch name first, so a failure changes nothing."""
        check_shapes(_unwrapped(lm.model), folder)
        if name in self.versions:
            scratch = f"{name}-incoming"
            _add(lm, scratch, folder)
            lm.model.delete_adapter(scratch)
            lm.model.delete_adapter(name)
        _add(lm, name, folder)
        self._count += 1
        self.versions[name] = self._count

    def unload(self, lm: Any, name: str) -> None:
        lm.model.delete_adapter(name)
        del self.versions[name]
        if not self.versions and self.default == BASE:  # the last one: serve the plain model again
            lm.model = lm.model.unload()


def _unwrapped(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _add(lm: Any, name: str, folder: Path) -> None:
    from peft import PeftModel

    if isinstance(lm.model, PeftModel):
        try:
            lm.model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        except Exception:
            if name in lm.model.peft_config:
                lm.model.delete_adapter(name)
            raise
    else:  # the first adapter of a plain served model wraps it (the base stays reachable as __base__)
        lm.model = PeftModel.from_pretrained(lm.model, str(folder), adapter_name=name, is_trainable=False).eval()


def check_shapes(model: Any, folder: Path) -> None:
    """BadRequest unless the adapter is a LoRA whose every tensor fits a layer of `model`."""
    from safetensors import safe_open

    try:
        config = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError) as e:
        raise BadRequest(f"adapter_config.json is not readable JSON ({e})", "lora_path") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise BadRequest("only LoRA adapters can be loaded (adapter_config.json: peft_type LORA)", "lora_path")
    try:
        with safe_open(str(folder / WEIGHTS), "pt") as f:
            shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
    except Exception as e:
        raise BadRequest(f"{WEIGHTS} is not a readable safetensors file ({e})", "lora_path") from None
    for key, shape in shapes.items():
        module_name, _, kind = key.removeprefix("base_model.model.").rpartition(".lora_")
        if kind not in ("A.weight", "B.weight"):
            raise BadRequest(f"{WEIGHTS}: {key}: only LoRA A/B matrices of linear layers are loaded at runtime",
                             "lora_path")  # fmt: skip
        try:
            layer = model.get_submodule(module_name)
        except AttributeError:
            raise BadRequest(f"{WEIGHTS}: {key} names a layer the served model does not have", "lora_path") from None
        a = kind == "A.weight"  # A is [r, in], B is [out, r]
        want = getattr(layer, "in_features" if a else "out_features", None)
        got = shape[1] if a else shape[0]
        if want is None or len(shape) != 2 or got != want:
            raise BadRequest(f"{WEIGHTS}: {key} has shape {list(shape)}, which does not fit the served model's "
                             f"{module_name} ({want} features): an adapter of another base model?", "lora_path")  # fmt: skip
