"""configs/: every YAML parses through the training CLI, documents its intent, and the DeepSpeed
configs pass DeepSpeed's own parser with the intended ZeRO stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def printed_config(out: str) -> dict:
    """The YAML --print_config wrote (DeepSpeed may log a line to stdout first)."""
    return yaml.safe_load(out[out.index("# lightning.pytorch==") :])


def test_expected_configs_exist():
    names = {p.name for p in CONFIGS}
    for name in [
        "quickstart.yaml",
        "llama7b_react.yaml",
        "llama13b_mix.yaml",
        "llama7b_full_deepspeed.yaml",
        "codellama34b_mix.yaml",
        "multitask_mix.yaml",
    ]:
        assert name in names


def init_args(section: dict) -> dict:
    """A `model:` block's arguments, given plainly (FireActLM) or with a class_path (e.g. GRPOLM)."""
    return section.get("init_args", section)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses_and_documents_intent(path, tmp_path, capsys, monkeypatch, data_dir):
    monkeypatch.setattr(sys, "argv", ["fireact.train"])
    text = path.read_text()
    header = [line for line in text.splitlines()[:3] if line.startswith("# ")]
    assert len(header) >= 2, f"{path.name}: needs a header comment on its intent"
    config = yaml.safe_load(text)
    for source in config["data"]["init_args"].get("sources", []):  # release files relative to the data dir
        assert (data_dir / source).is_file(), f"{path.name}: {source} not in the FireAct release"
    from fireact.train import build_cli

    with pytest.raises(SystemExit) as done:
        build_cli(["fit", "--config", str(path), "--print_config"])
    assert done.value.code in (0, None)
    printed = printed_config(capsys.readouterr().out)
    assert init_args(printed["model"])["model"] == init_args(config["model"])["model"]


def test_cli_override_wins(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["fireact.train"])
    from fireact.train import build_cli

    path = ROOT / "configs" / "quickstart.yaml"
    config = yaml.safe_load(path.read_text())
    config["data"] = {"class_path": "train_helpers.RandomTokenDataModule"}
    with pytest.raises(SystemExit):
        build_cli(
            ["fit", "--config", json.dumps(config), "--trainer.max_steps", "7", "--model.lr", "0.125", "--print_config"]
        )
    printed = printed_config(capsys.readouterr().out)
    assert printed["trainer"]["max_steps"] == 7
    assert init_args(printed["model"])["lr"] == 0.125


@pytest.mark.parametrize(("name", "stage", "offload"), [("zero3.json", 3, "none"), ("zero3_offload.json", 3, "cpu")])
def test_deepspeed_config_valid(name, stage, offload):
    from deepspeed.runtime.config import DeepSpeedConfig

    raw = json.loads((ROOT / "configs" / "deepspeed" / name).read_text())
    # Lightning fills the batch keys from the Trainer (and refuses them in the file)
    assert "gradient_accumulation_steps" not in raw and "train_batch_size" not in raw
    parsed = DeepSpeedConfig({**raw, "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 8})
    # misspelled top-level keys are silently accepted, so check what DeepSpeed actually read
    assert parsed.zero_optimization_stage == stage
    assert parsed.zero_config.offload_optimizer.device == offload
    assert parsed.gradient_clipping == raw["gradient_clipping"]


def test_full_deepspeed_config_points_at_zero3():
    config = yaml.safe_load((ROOT / "configs" / "llama7b_full_deepspeed.yaml").read_text())
    ds = json.loads((ROOT / config["trainer"]["strategy"]["init_args"]["config"]).read_text())
    assert ds["zero_optimization"]["stage"] == 3
    assert config["model"]["finetune"] == "full" and config["trainer"]["devices"] == 4


def test_on_policy_repro_configs_parse(capsys, monkeypatch, tmp_path):
    """configs/repro's GRPO config (a GRPOLM by class_path) and the expert-iteration config both parse."""
    monkeypatch.setattr(sys, "argv", ["fireact.train"])
    from jsonargparse import ArgumentParser

    from fireact.modules.expert_iteration import ExpertIteration
    from fireact.train import build_cli

    with pytest.raises(SystemExit) as done:
        build_cli(["fit", "--config", str(ROOT / "configs/repro/smollm2_hotpotqa_grpo.yaml"), "--print_config"])
    assert done.value.code in (0, None)
    printed = printed_config(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "fireact.modules.grpo.GRPOLM"
    assert printed["model"]["init_args"]["rollouts"]["temperature"] == 0.8
    assert printed["data"]["class_path"] == "fireact.modules.questions.QuestionDataModule"
    sys.path.insert(0, str(ROOT / "experiments"))
    from on_policy import GRPO_ARMS

    for arm, config in GRPO_ARMS.items():  # the wiki world's GRPO; its runs where the experiment reads them
        with pytest.raises(SystemExit):
            build_cli(["fit", "--config", str(ROOT / config), "--print_config"])
        printed = printed_config(capsys.readouterr().out)
        model = printed["model"]["init_args"]
        assert model["rollouts"]["tool"] == "wiki" and printed["data"]["init_args"]["pool"]["split"] == "wiki-train"
        assert (model["reward"], model["seen_bonus"]) == ("f1", 0.25)
        (validation,) = [c for c in printed["trainer"]["callbacks"] if c["class_path"].endswith("RolloutValidation")]
        rollouts = validation["init_args"]["rollouts"]
        assert (rollouts["split"], rollouts["offset"]) == ("wiki-val", 100)
        assert printed["trainer"]["default_root_dir"] == f"runs/on_policy/{arm}"
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(ExpertIteration)
    cfg = parser.parse_path(str(ROOT / "configs/repro/smollm2_hotpotqa_expert_iteration.yaml"))
    loop = ExpertIteration(**parser.instantiate_classes(cfg).as_dict())
    assert loop.rounds == 2 and loop.pool.samples == 4 and loop.validation.offset == 100
    # the wiki world's (issue 26): trains on wiki-train, chooses on wiki-val, never sees wiki-eval
    for name in ("quickstart_wiki_ei", "quickstart_wiki_ei_gold", "quickstart_wiki_ei_after_gold"):
        cfg = parser.parse_path(str(ROOT / f"configs/on_policy/{name}.yaml"))
        loop = ExpertIteration(**parser.instantiate_classes(cfg).as_dict())
        assert (loop.pool.split, loop.validation.split) == ("wiki-train", "wiki-val")
        assert loop.pool.tool_name() == loop.validation.tool_name() == "wiki" and loop.pool.temperature == 1.0
        assert loop.gold_path == (name == "quickstart_wiki_ei_gold")


def test_reproduce_variants_and_report(tmp_path, monkeypatch, capsys, data_dir):
    """experiments/reproduce.py's derived runs (data scaling, unmasked) parse through the training CLI
    with their changes and their own output dirs, and the report pairs each setting with (c)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import reproduce

    from fireact.data.paths import snapshot_path
    from fireact.data.trajectory import Trajectory, Turn, write_trajectories
    from fireact.train import build_cli

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(reproduce, "OUT", tmp_path)
    monkeypatch.setattr(sys, "argv", ["fireact.train"])
    n100 = yaml.safe_load(reproduce.variant_config("react-n100").read_text())
    assert n100["trainer"]["max_steps"] == 50 and n100["data"]["init_args"]["mix"] == {"hotpotqa/react": 100}
    assert "runs/repro/react-n100/checkpoints" in json.dumps(n100) and "runs/repro/react/" not in json.dumps(n100)
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", str(reproduce.variant_config("react-unmasked")), "--print_config"])
    assert printed_config(capsys.readouterr().out)["data"]["init_args"]["mask_observations"] is False
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", str(reproduce.variant_config("multitask")), "--print_config"])
    multitask = printed_config(capsys.readouterr().out)
    assert multitask["data"]["init_args"]["mix"]["mmlu/react"] == 150 and multitask["trainer"]["max_steps"] == 400
    with pytest.raises(SystemExit):  # the tool-call variant (issue 28): the same recipe, the other protocol
        build_cli(["fit", "--config", str(reproduce.variant_config("react-tool-calls")), "--print_config"])
    assert printed_config(capsys.readouterr().out)["data"]["init_args"]["protocol"] == "tool-calls"
    assert reproduce.task_of("m@bamboogle") == ("bamboogle", "test") and reproduce.task_of("c") == ("hotpotqa", "dev")

    def run(name: str, right: set[int]) -> dict:
        turns = [Turn("t", "search[x]", "o"), Turn("t", "finish[a]")]
        trajs = [
            Trajectory(f"q{i}", "a", "hotpotqa", "react", turns, em=float(i in right), id=str(i)) for i in range(10)
        ]
        write_trajectories(tmp_path / f"eval_{name}.jsonl", trajs)
        result = {"em": len(right) / 10, "f1": 0, "turns_mean": 1, "turns_std": 0, "format_error_rate": 0}
        return {"result": {**result, "seconds_per_question": 1.0}}

    steps = {"eval-c": run("c", {0, 1, 2, 3}), "eval-g-n100": run("g-n100", {0, 5}), "eval-g-n200": run("g-n200", {1})}
    steps |= {"eval-c@mmlu": run("c@mmlu", {0}), "eval-m@mmlu": run("m@mmlu", {0, 1, 2})}
    steps |= {f"eval-{s}": run(s, right) for s, right in (("d", {0}), ("s-cot", {5, 6}), ("s-reflexion", {0, 9}))}
    # (c)'s Bamboogle episode: one search the snapshot holds as is (a different case), one it does not, an answer
    cached = json.loads(snapshot_path(data_dir).open().readline())["query"]
    turns = [
        Turn("t", f"search[{cached.upper()}]", "o"),
        Turn("t", "search[no such query xq]", "o"),
        Turn("t", "finish[a]"),
    ]
    write_trajectories(
        tmp_path / "eval_c@bamboogle.jsonl", [Trajectory("q0", "a", "bamboogle", "react", turns=turns, id="0")]
    )
    monkeypatch.setenv("FIREACT_DATA_DIR", str(data_dir))
    reproduce.report(steps, 10)
    table = (tmp_path / "results.md").read_text()
    assert "| g-n100 |" in table and "+1 / -3, p=0.62 |" in table and (tmp_path / "data_scaling.png").stat().st_size
    assert "| c@mmlu |" not in table and "| hotpotqa | strategyqa | mmlu | bamboogle |" in table
    assert "| c: FireAct: 500 HotpotQA ReAct | 40.0 (0) | - | 10.0 (0) | - |" in table
    assert (
        "| m: FireAct: multi-task ReAct (HotpotQA+StrategyQA+MMLU) | - | - | 30.0 (0); +2 / -0, p=0.50 | - |" in table
    )
    # random method: (4 + 2 + 2) / 3 right per 10 questions; oracle: 0-3, 5, 6, 9 right
    assert (
        "| react | 100 | 10.0 | 2.00 ± 0.00 |" in table
        and "random method 26.7 EM, per-question oracle 70.0 EM" in table
    )
    assert "| d | 0 | 0 | 0.00 |" in table
    assert "| c | 0 | - | 0 | 50 |" in table  # share of searches answered from the snapshot's cache


def test_on_policy_grpo_steps_resume_and_curve(tmp_path, monkeypatch):
    """experiments/on_policy.py's GRPO steps: training resumes from the last checkpoint, export takes
    the best validated one once it exists, and a resumed run's logged rows replace the killed run's."""
    import argparse

    sys.path.insert(0, str(ROOT / "experiments"))
    import on_policy

    monkeypatch.setattr(on_policy, "OUT", tmp_path)
    args = argparse.Namespace(rounds=1, threads=2)
    assert on_policy.steps(args)["grpo-train"][0][-2:] == ["--ckpt_path", "last"]
    (tmp_path / "grpo" / "checkpoints").mkdir(parents=True)
    (tmp_path / "grpo" / "checkpoints" / "best-step=16.ckpt").touch()
    assert str(tmp_path / "grpo" / "checkpoints" / "best-step=16.ckpt") in on_policy.steps(args)["grpo-export"][0]
    header = "epoch,step,train/reward_mean,val/em\n"
    for version, rows in ((0, "0,0,0.1,\n0,1,0.2,\n0,2,,0.1\n0,2,0.9,\n"), (10, "0,2,0.3,\n0,3,0.4,\n")):
        log = tmp_path / "grpo" / "metrics" / f"version_{version}" / "metrics.csv"
        log.parent.mkdir(parents=True)
        log.write_text(header + rows)
    rows = on_policy.grpo_metrics(tmp_path / "grpo")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert rows[2] == {"step": 2, "epoch": 0.0, "train/reward_mean": 0.3, "val/em": 0.1}  # the resumed run's reward
    table = on_policy.phase_table(rows, "GRPO", k=2)  # first vs last 2 of its 4 updates
    assert table[0] == "| GRPO, 4 updates | first 2 | last 2 |"
    assert "| reward of the sampled wiki-train episodes | 0.15 | 0.35 |" in table
    assert "| sampling, s an update | - | - |" in table  # not logged
    from fireact.data.trajectory import Trajectory, Turn, write_trajectories

    right = Trajectory("Q", "a", "hotpotqa", "react", [Turn("t", "finish[a]")], "a", 1.0, 1.0, id="q1")
    wrong = Trajectory("Q", "a", "hotpotqa", "react", [Turn("t", "finish[b]")], "b", 0.0, 0.0, id="q1")
    for version, name, trajs in (
        (0, "step000000_before", [wrong]),
        (0, "step000008", [wrong]),
        (10, "step000008", [right]),
    ):
        write_trajectories(tmp_path / "grpo" / "metrics" / f"version_{version}" / "rollouts" / f"{name}.jsonl", trajs)
    validations = on_policy.grpo_validations(tmp_path / "grpo")
    assert list(validations) == [0, 8] and validations[8][0].em == 1.0  # the resumed run's validation
    first = tmp_path / "grpo" / "metrics" / "version_0"  # the legend's reward weights and G come from its run
    (first / "hparams.yaml").write_text("reward: f1\nseen_bonus: 0.25\nformat_penalty: 0.5\ngroup_size: 4\n")
    (first / "config.yaml").write_text("data:\n  init_args: {questions_per_step: 8}\n")
    on_policy.plot_grpo(tmp_path / "grpo", "GRPO", tmp_path / "grpo.png")
    assert (tmp_path / "grpo.png").stat().st_size > 0
    teacher = tmp_path / "grpo" / "metrics" / "version_11" / "metrics.csv"  # a run with the gold-path teacher
    teacher.parent.mkdir()
    teacher.write_text("epoch,step,train/reward_mean,train/gold_paths,train/gold_path_nll\n0,4,0.5,3,2.1\n0,5,0.5,0,\n")
    (first / "hparams.yaml").write_text((first / "hparams.yaml").read_text() + "gold_path_coef: 0.25\n")
    on_policy.plot_grpo(tmp_path / "grpo", "GRPO + teacher", tmp_path / "teacher.png")
    assert (tmp_path / "teacher.png").stat().st_size > 0
