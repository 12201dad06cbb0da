"""The prompt format travels with the weights: DataModule -> callback rollouts -> checkpoint -> export
folder -> `fireact eval` with no --format. An alpaca-trained agent can no longer be prompted in chat
by a default."""

from __future__ import annotations

import json

import pytest
import torch

from fireact.cli import main
from fireact.data.prompt_style import STYLE_FILE, PromptStyle
from fireact.data.synthetic import write_world
from fireact.data.trajectory import read_trajectories
from fireact.rollout.config import RolloutConfig


def trained_agent(tmp, tiny_model_dir, **style) -> dict:
    """One LoRA step in the DataModule's `style` (format, protocol) with rollouts before it, exported."""
    import lightning.pytorch as pl

    from fireact.modules.datamodule import TrajectoryDataModule
    from fireact.modules.lm_module import FireActLM
    from fireact.modules.rollout_callback import RolloutValidation

    world = write_world(tmp / "world", n_people=20, n_dev=3)
    dm = TrajectoryDataModule(
        tokenizer=tiny_model_dir, sources=[str(world / "synthetic/expert_train.jsonl")], **style,
        val_size=0, batch_size=2, data_dir=str(world), run_dir=str(tmp),
    )  # fmt: skip
    rollouts = RolloutConfig(tasks=["synthetic"], n=3, max_turns=2, max_tokens=8, batch_size=3)
    cb = RolloutValidation(rollouts, data_dir=str(world))
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=1, limit_val_batches=0, logger=False, callbacks=[cb],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp,
    )  # fmt: skip
    trainer.fit(FireActLM(model=tiny_model_dir, finetune="lora"), dm)
    trainer.save_checkpoint(tmp / "last.ckpt")
    assert main(["export", "--ckpt", str(tmp / "last.ckpt"), "--out", str(tmp / "agent")]) == 0
    return {"tmp": tmp, "world": world, "cb": cb, "base": tiny_model_dir}


@pytest.fixture(scope="module")
def alpaca_run(tmp_path_factory, tiny_model_dir):
    return trained_agent(tmp_path_factory.mktemp("style"), tiny_model_dir, format="alpaca")


def eval_agent(run, capsys, *extra: str) -> tuple[dict, list]:
    out = run["tmp"] / f"eval{len(extra)}.jsonl"
    argv = ["eval", "--lm", f"hf:{run['tmp'] / 'agent'}", "--task", "synthetic", "--n", "3", "--max-turns", "2"]
    argv += ["--max-tokens", "8", "--out", str(out), "--json", "--data-dir", str(run["world"]), *extra]
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out.strip().splitlines()[-1]), read_trajectories(out), captured.err


def test_callback_prompts_in_the_datamodule_format(alpaca_run):
    (row,) = alpaca_run["cb"].history
    assert {t.meta["fmt"] for t in read_trajectories(row["file"])} == {"alpaca"}


def test_checkpoint_and_export_carry_the_style(alpaca_run):
    want = PromptStyle("alpaca", base_model=alpaca_run["base"])
    ckpt = torch.load(alpaca_run["tmp"] / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["fireact"]["prompt_style"] == want.to_dict()
    assert PromptStyle.load(alpaca_run["tmp"] / "agent") == want
    assert (alpaca_run["tmp"] / "agent" / "adapter_config.json").is_file()


def test_eval_of_the_export_uses_the_trained_format(alpaca_run, capsys):
    summary, trajs, _ = eval_agent(alpaca_run, capsys)
    assert summary["format"] == "alpaca" and {t.meta["fmt"] for t in trajs} == {"alpaca"}
    # an explicit flag still wins, with a warning naming the trained format
    with pytest.warns(UserWarning, match="overrides the 'alpaca' format"):
        summary, trajs, _ = eval_agent(alpaca_run, capsys, "--format", "chat")
    assert summary["format"] == "chat" and {t.meta["fmt"] for t in trajs} == {"chat"}


def test_a_folder_without_a_style_is_prompted_in_chat(alpaca_run, capsys, tmp_path):
    import shutil

    bare = shutil.copytree(alpaca_run["tmp"] / "agent", tmp_path / "agent")
    (bare / STYLE_FILE).unlink()
    run = {**alpaca_run, "tmp": tmp_path}
    summary, _, _ = eval_agent(run, capsys)
    assert summary["format"] == "chat"


def test_the_tool_call_protocol_travels_like_the_format(tmp_path, tiny_model_dir, capsys):
    run = trained_agent(tmp_path, tiny_model_dir, protocol="tool-calls")
    (row,) = run["cb"].history
    assert {t.meta["protocol"] for t in read_trajectories(row["file"])} == {"tool-calls"}
    assert PromptStyle.load(tmp_path / "agent") == PromptStyle("chat", tiny_model_dir, "tool-calls")
    summary, trajs, _ = eval_agent(run, capsys)
    assert summary["protocol"] == "tool-calls" and {t.meta["protocol"] for t in trajs} == {"tool-calls"}
    with pytest.warns(UserWarning, match="protocol 'react' overrides the 'tool-calls' protocol"):
        _, trajs, _ = eval_agent(run, capsys, "--protocol", "react")
    assert all("protocol" not in t.meta for t in trajs)  # react records stay as they were
