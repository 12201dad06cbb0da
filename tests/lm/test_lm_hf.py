"""The transformers backend for real: batched == sequential greedy, in-memory models, real SmolLM2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fireact.data.paths import snapshot_path
from fireact.data.tasks import get_task, select
from fireact.data.trajectory import Turn
from fireact.lm.hf import HFLM
from fireact.rollout.config import RolloutConfig
from fireact.rollout.runners import run_rollouts
from fireact.tools.snapshot import SnapshotSearch

PROMPTS = [
    [{"role": "user", "content": "Which city is the capital of France?"}],
    [{"role": "user", "content": "Who wrote the novel that the 1939 film Gone with the Wind was based on?"}],
    [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "Thought: a\nAction: search[b]"},
        {"role": "user", "content": "Observation: c"},
    ],
    "Below is an instruction.\n\n### Instruction:\nName a color.\n\n### Response:\n",
]


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    import torch

    return HFLM(tiny_model_dir, dtype=torch.float32, batch_size=4)


def test_batched_greedy_equals_one_at_a_time(tiny_lm):
    stop = ["\nObservation"]
    batched = tiny_lm.complete(PROMPTS, stop, 24)
    single = [tiny_lm.complete([p], stop, 24)[0] for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in single]
    assert all(c.completion_tokens > 0 and c.prompt_tokens > 0 for c in batched)
    # Per-sequence stop strings: cutting at a stop string keeps the text before it.
    first = single[0].text
    if len(first) > 4:
        (cut,) = tiny_lm.complete([PROMPTS[0]], [first[2:4]], 24)
        assert cut.text == first[: first.find(first[2:4])]


def test_prefix_kv_cache_keeps_greedy_output(tiny_model_dir, data_dir):
    """Few-shot prompts share a long prefix: prefilled once and reused, the output must not change."""
    import torch

    from fireact.agent.prompts import default_exemplar_pool, few_shot_prefix, pick_exemplars
    from fireact.data.prompt_style import PromptStyle

    examples = select(get_task("hotpotqa").load(data_dir, "dev"), 4)
    shots = pick_exemplars(default_exemplar_pool(data_dir, "hotpotqa"), "hotpotqa", 2, 0, set(), "react")
    prefix = few_shot_prefix("react", shots, fmt="chat")
    chat = PromptStyle("chat")
    prompts = [chat.prompt(e.question, [], prefix) for e in examples]
    prompts[1] = chat.prompt(examples[1].question, [Turn("t", "search[x]", "an observation")], prefix)
    cached = HFLM(tiny_model_dir, dtype=torch.float32, batch_size=4)
    plain = HFLM(tiny_model_dir, dtype=torch.float32, batch_size=4, prefix_cache=False)
    want = plain.complete(prompts, ["\nObservation"], 16)
    got = cached.complete(prompts, ["\nObservation"], 16)
    assert cached._prefix_key is not None and len(cached._prefix_key) > 200  # the exemplars were cached
    assert [c.text for c in got] == [c.text for c in want]
    assert [c.prompt_tokens for c in got] == [c.prompt_tokens for c in want]
    again = cached.complete(prompts[2:], ["\nObservation"], 16)  # reuses the cached prefix
    assert [c.text for c in again] == [c.text for c in want[2:]]


def test_in_memory_model_is_not_moved_or_cast(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    side = tok.padding_side
    lm = HFLM(model, tok, batch_size=2)
    before = {n: p.clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        out = lm.complete(PROMPTS[:3], ["\nObservation"], 8)
    assert len(out) == 3 and lm.model is model
    assert all(p.dtype == torch.float32 and torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert tok.padding_side == side and not model.training


def test_rollouts_with_tiny_model_and_snapshot(tiny_lm, data_dir):
    task = get_task("hotpotqa")
    examples = select(task.load(data_dir, "dev"), 5)
    tool = SnapshotSearch(snapshot_path(data_dir))
    seen = []
    trajs = run_rollouts(
        tiny_lm,
        tool,
        examples,
        RolloutConfig(max_turns=2, batch_size=2, max_tokens=16),
        progress=lambda d, n, em: seen.append((d, n, em)),
    )
    assert [t.id for t in trajs] == [e.id for e in examples]
    assert all(t.end_reason in ("finish", "max_turns", "no_action", "bad_action", "unknown_tool") for t in trajs)
    assert seen[-1] == (5, 5, sum(t.em for t in trajs) / 5) and all(t.meta["lm"] == tiny_lm.name for t in trajs)


@pytest.mark.slow
def test_real_smollm2_eval_zero_and_few_shot(smollm2_dir, data_dir, tmp_path):
    """The offline default model runs as an agent here, zero-shot and few-shot, via the CLI."""
    for k in (0, 2):
        out = tmp_path / f"eval{k}.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "fireact",
            "eval",
            "--lm",
            "hf:smollm2-135m",
            "--n",
            "3",
            "--max-turns",
            "2",
            "--max-tokens",
            "40",
            "--few-shot",
            str(k),
            "--out",
            str(out),
            "--json",
            "--data-dir",
            str(data_dir),
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        assert summary["n"] == 3 and summary["expected"] == 3 and summary["seconds_per_question"] > 0
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(rows) == 3 and all(r["meta"]["few_shot"] == k and r["turns"] for r in rows)
        assert all(r["meta"]["completion_tokens"] > 0 for r in rows)


def test_peft_adapter_backend(tiny_model_dir, tmp_path):
    """hf:PATH + --adapter loads the adapter on top; same output as the in-memory PeftModel."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fireact.lm.factory import make_lm

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config).eval()
    peft_model.save_pretrained(tmp_path / "adapter")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    in_memory = HFLM(peft_model, tok).complete(PROMPTS[:2], [], 12)
    loaded = make_lm(f"hf:{tiny_model_dir}", adapter=str(tmp_path / "adapter"), dtype=torch.float32)
    plain = make_lm(f"hf:{tiny_model_dir}", dtype=torch.float32)
    assert [c.text for c in loaded.complete(PROMPTS[:2], [], 12)] == [c.text for c in in_memory]
    assert [c.text for c in plain.complete(PROMPTS[:2], [], 12)] != [c.text for c in in_memory]
