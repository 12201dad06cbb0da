"""`fireact export-data`: the DataModule's exact mix, written as OpenAI / alpaca / `datasets`, read back
by `fireact import` to the same trajectories."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest
from cli_runner import run_cli
from datasets import load_from_disk
from faults import refused_url

from fireact import retry
from fireact.cli import main
from fireact.data.trajectory import read_trajectories
from fireact.modules.datamodule import TrajectoryDataModule

MULTITASK = "finetune/alpaca_format/multitask_multimethod.json"


def essence(trajs):
    """What a training set carries: question, task, method, every turn, the answer given, the reward."""
    return [(t.question, t.task, t.method, t.turns, t.prediction, t.em) for t in trajs]


def export_and_import(tmp_path, fmt, sources, *extra, task=None):
    out = tmp_path / {"openai": "set.jsonl", "alpaca": "set.json", "hf": "set"}[fmt]
    assert main(["export-data", "--sources", *sources, "--format", fmt, "--out", str(out), *extra]) == 0
    back = tmp_path / f"back-{fmt}.jsonl"
    assert main(["import", str(out), "--out", str(back), *(["--task", task] if task else [])]) == 0
    return out, read_trajectories(back)


@pytest.mark.parametrize("fmt", ["openai", "alpaca", "hf"])
def test_round_trip_on_the_release(data_dir, tmp_path, fmt, capsys):
    """All 2,063 multi-task multi-method trajectories (ReAct, CoT, Reflexion; three tasks) come back
    unchanged through each format, in the exported order."""
    out, back = export_and_import(tmp_path, fmt, [MULTITASK], "--val-size", "0", "--seed", "3")
    dm = TrajectoryDataModule(sources=[MULTITASK], val_size=0, seed=3)
    dm.setup("fit")
    expected = sorted(essence(dm.trajectories[i] for i in dm.train_indices), key=repr)
    assert len(back) == len(expected) == 2063
    assert sorted(essence(back), key=repr) == expected
    assert {t.method for t in back} == {"react", "cot", "reflexion"}
    if fmt == "hf":  # every field travels, the gold answer and ids too
        kept = {(t.question, t.id, t.source) for t in back}
        assert kept == {(t.question, t.id, t.source) for t in (dm.trajectories[i] for i in dm.train_indices)}
        from datasets import load_from_disk

        ds = load_from_disk(str(out))
        assert ds[0]["messages"][0]["role"] == "user" and ds[0]["messages"][1]["role"] == "assistant"


def test_openai_file_is_fireacts_gpt_format(data_dir, tmp_path):
    """Assistant turns hold Thought/Action; observations and the closing reward line are user turns."""
    out, _ = export_and_import(tmp_path, "openai", ["finetune/gpt_format/hotpotqa.jsonl"], "--val-size", "0")

    def canon(record):  # FireAct left trailing spaces on some lines (42 of 500 records); fireact strips them
        return json.dumps(
            [(m["role"], [x.rstrip() for x in m["content"].strip().splitlines()]) for m in record["messages"]]
        )

    released = {canon(json.loads(line)) for line in (data_dir / "finetune/gpt_format/hotpotqa.jsonl").open()}
    ours = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(ours) == 500 and {canon(r) for r in ours} == released  # the release, message for message
    for r in ours:
        roles = [m["role"] for m in r["messages"]]
        assert roles[0] == "user" and roles[1::2] == ["assistant"] * len(roles[1::2])
        assert r["messages"][-1]["content"].startswith("Observation: Episode finished, reward = ")


def test_the_mix_is_the_datamodules(data_dir, tmp_path, capsys):
    """Counts, fractions, upsampling and the held-out questions are the DataModule's; the card is beside it."""
    mix = {"hotpotqa/react": 120, "strategyqa/react": 0.25, "mmlu/cot": 700}
    args = ["--mix", json.dumps(mix), "--seed", "11", "--val-size", "10", "--val-out", str(tmp_path / "val.json")]
    out, back = export_and_import(tmp_path, "alpaca", [MULTITASK], *args)
    dm = TrajectoryDataModule(sources=[MULTITASK], mix=mix, seed=11, val_size=10)
    dm.setup("fit")
    want = Counter(t.question for t in (dm.trajectories[i] for i in dm.train_indices))
    assert Counter(t.question for t in back) == want
    cells = Counter(f"{t.task}/{t.method}" for t in back)
    assert cells["hotpotqa/react"] == 120 and cells["mmlu/cot"] == 700 and set(cells) == set(mix)
    assert cells["strategyqa/react"] == round(0.25 * round(820 / 0.75))
    card = json.loads((tmp_path / "set.json.provenance.json").read_text())
    assert card["export"]["train"]["examples"] == len(back) == card["train_examples"]
    assert {c["cell"]: c["sampling"] for c in card["cells"]}["mmlu/cot"] == "upsampled"
    val = json.loads((tmp_path / "val.json").read_text())
    assert len(val) == card["export"]["validation"]["examples"] > 0
    held = {r["instruction"] for r in val}
    assert not held & set(want)  # no validation question is trained on


def test_config_data_block_and_flags(data_dir, tmp_path, capsys):
    """A training config's data: block gives the options; a flag overrides one of them."""
    out = tmp_path / "mix.jsonl"
    argv = ["export-data", "--config", "configs/llama13b_mix.yaml", "--tokenizer", "smollm2-135m"]
    assert main([*argv, "--format", "openai", "--out", str(out)]) == 0
    card = json.loads(out.with_name("mix.jsonl.provenance.json").read_text())
    import yaml

    data = yaml.safe_load(open("configs/llama13b_mix.yaml"))["data"]
    data = data.get("init_args", data)
    assert (
        card["mix"] == data.get("mix")
        and card["truncation"] == data["truncation"]
        and card["seed"] == data.get("seed", 42)
    )
    assert card["tokenizer"] == "smollm2-135m" and len(out.read_text().splitlines()) == card["train_examples"]


def test_without_the_release(assets, tmp_path, monkeypatch, capsys):
    """The three asset episodes round-trip through every format with no data dir at all."""
    monkeypatch.setenv("FIREACT_DATA_DIR", str(tmp_path / "no-release"))
    src = str(assets / "fireact_gpt.jsonl")
    for fmt in ("openai", "alpaca", "hf"):
        _, back = export_and_import(tmp_path, fmt, [src], "--val-size", "0", task="hotpotqa")
        assert sorted(t.method for t in back) == ["cot", "react", "reflexion"]
        assert sorted(t.prediction for t in back) == ["Asten", "Ines Carrow", "no"]


def test_hf_folder_trains_and_pushes(assets, tmp_path, monkeypatch, capsys):
    """The `datasets` folder is itself a training source, and --push-to-hub uploads it as a dataset repo."""
    from hub_standin import HubStandIn

    monkeypatch.setenv("FIREACT_DATA_DIR", str(tmp_path / "no-release"))
    out = tmp_path / "ds"
    token = "hf_standin_token_export_data"
    with HubStandIn(tmp_path / "hub", token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", token)
        argv = ["export-data", "--sources", str(assets / "fireact_alpaca.json"), "--val-size", "0"]
        assert main([*argv, "--format", "hf", "--out", str(out), "--push-to-hub", "me/traj"]) == 0
        assert hub.repo_types == {"me/traj": "dataset"}, hub.unhandled
        remote = tmp_path / "hub" / "me/traj"
        assert {p.name for p in remote.rglob("*")} >= {"dataset_info.json", "data_provenance.json"}
        assert all(token.encode() not in p.read_bytes() for p in remote.rglob("*") if p.is_file())
    dm = TrajectoryDataModule(sources=[str(out)], val_size=0)
    dm.setup("fit")
    assert len(dm.train_indices) == 3 and dm.provenance["sources"][0]["path"] == str(out)


def test_push_survives_transient_faults_and_says_how_to_push_again(assets, tmp_path, monkeypatch, capsys):
    """A 500, a dropped connection and a body cut in half are retried; a Hub that stays unreachable
    ends with one line that names it, says the exported folder is complete and how to push it, no token."""
    from hub_standin import HubStandIn

    monkeypatch.setattr(retry, "DELAYS", (0.0, 0.0, 0.0))
    out = tmp_path / "ds"
    token = "hf_standin_token_export_data"
    monkeypatch.setenv("HF_TOKEN", token)
    argv = ["export-data", "--sources", str(assets / "fireact_alpaca.json"), "--val-size", "0", "--format", "hf"]
    with HubStandIn(tmp_path / "hub", token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.faults[:] = ["500", "drop", "cut"]
        assert main([*argv, "--out", str(out), "--push-to-hub", "me/traj"]) == 0, capsys.readouterr().err
        assert (tmp_path / "hub/me/traj/data_provenance.json").is_file() and not hub.faults
        capsys.readouterr()
        hub.faults[:] = ["503"] * 4
        assert main([*argv, "--out", str(tmp_path / "ds2"), "--push-to-hub", "me/traj2"]) == 2
    monkeypatch.setenv("HF_ENDPOINT", refused_url())
    assert main([*argv, "--out", str(tmp_path / "ds3"), "--push-to-hub", "me/traj3"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 2
    for folder, err in zip(("ds2", "ds3"), errors):
        assert "--push-to-hub me/traj" in err and "failed after 4 attempts" in err and token not in err, err
        assert f"the exported folder {tmp_path / folder} is complete" in err and "--repo-type dataset`" in err
        assert len(load_from_disk(str(tmp_path / folder))) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--format", "openai", "--push-to-hub", "me/x"], "--push-to-hub uploads a datasets folder"),
        (["--format", "hf", "--mix", '{"hotpotqa/nope": 3}'], "mix cell 'hotpotqa/nope'"),
        (["--format", "alpaca", "--config", "configs/repro/smollm2_hotpotqa_expert_iteration.yaml"], "no data: block"),
        (["--format", "alpaca", "--config", "NOTES"], "notes.md:2: not valid YAML"),
        (["--format", "openai", "--config", "UNMASKED"], "mask_observations: false cannot be exported as OpenAI"),
    ],
)
def test_bad_input_is_one_line(assets, tmp_path, argv, message):
    out = tmp_path / "never"
    if "UNMASKED" in argv:
        (tmp_path / "unmasked.yaml").write_text("data:\n  mask_observations: false\n")
        argv = [str(tmp_path / "unmasked.yaml") if a == "UNMASKED" else a for a in argv]
    if "NOTES" in argv:  # a markdown file given as the config
        (tmp_path / "notes.md").write_text("data: the mix\nnote: see: README\n")
        argv = [str(tmp_path / "notes.md") if a == "NOTES" else a for a in argv]
    cmd = [sys.executable, "-m", "fireact", "export-data", "--sources", str(assets / "fireact_gpt.jsonl")]
    r = run_cli([*cmd, *argv, "--out", str(out)])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert message in r.stderr and not out.exists()
