"""docs/howto/environment.md as a user follows it: its environment file exactly as printed, a teacher
behind the real openai client generating trajectories in both protocols, the mask audit, the export
and import round trip, a DataModule mixing it with FireAct's own records, and eval of a local model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fireact.cli import main
from fireact.data.fireact_format import read_any
from fireact.data.trajectory import read_trajectories

HOWTO = Path(__file__).resolve().parents[2] / "docs" / "howto" / "environment.md"


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """The how-to's environment file, exactly as the page prints it."""
    code = re.search(r"```python\n(.*?)```", HOWTO.read_text(encoding="utf-8"), re.DOTALL).group(1)
    path = tmp_path_factory.mktemp("howto") / "shop.py"
    path.write_text(code, encoding="utf-8")
    return path


def shop_teacher(body: dict) -> str:
    """A teacher that knows the shop: price the question's item, then answer what the tool said."""
    messages = body["messages"]
    tool_calls = "<tools>" in messages[0]["content"]
    question = next(m["content"] for m in messages if m["role"] == "user")
    quantity, item = re.search(r"What do (\d+) (\w+)s cost", question).groups()
    if not any(m["role"] == "assistant" for m in messages):
        arguments = {"item": item, "quantity": int(quantity)}
        if tool_calls:
            return f'I look up the price.\n<tool_call>\n{{"name": "price", "arguments": {json.dumps(arguments)}}}\n</tool_call>'
        return f"Thought: I look up the price.\nAction: price[{json.dumps(arguments)}]"
    amount = re.search(r"[\d.]+", messages[-1]["content"].split("Observation:")[-1]).group(0)
    if tool_calls:
        return f'It costs {amount}.\n<tool_call>\n{{"name": "finish", "arguments": {{"answer": "{amount}"}}}}\n</tool_call>'
    return f"Thought: It costs {amount}.\nAction: finish[{amount}]"


@pytest.mark.parametrize("protocol", ["react", "tool-calls"])
def test_the_howto_environment_generates_trains_and_round_trips(shop, tmp_path, monkeypatch, capsys, protocol):
    from chat_standin import ChatStandIn

    monkeypatch.setenv("OPENAI_API_KEY", "sk-howto-0123456789")
    out = tmp_path / "teacher.jsonl"
    with ChatStandIn(shop_teacher) as srv:
        args = [
            "generate",
            "--env",
            str(shop),
            "--env-args",
            '{"n": 6}',
            "--lm",
            "openai:teacher",
            "--base-url",
            srv.url,
        ]
        assert main([*args, "--protocol", protocol, "--n", "4", "--only-successful", "--out", str(out)]) == 0
    records = read_trajectories(out)
    assert len(records) == 4 and {t.task for t in records} == {"shop"} and {t.reward for t in records} == {1.0}
    for t in records:
        item, quantity = re.search(r"What do (\d+) (\w+)s", t.question).groups()[::-1]
        assert (t.turns[0].tool, t.turns[0].arguments) == ("price", {"item": item, "quantity": int(quantity)})
        assert t.turns[-1].tool == "finish" and t.instructions.startswith("You answer questions about a shop")
        assert [s["function"]["name"] for s in t.tools] == ["stock", "price", "finish"]
    capsys.readouterr()

    # the loss is on the agent's text only: its thoughts and calls, never the tool's answers
    assert main(["mask-audit", "--data", str(out), "--protocol", protocol, "--n", "1", "--json"]) == 0
    audit = json.loads(capsys.readouterr().out.splitlines()[0])
    trained = "".join(audit["trained"])
    observation = records[0].turns[0].observation
    assert "price" in trained and "I look up the price." in trained and "You answer questions" not in trained
    assert "Observation" not in trained and "tool_response" not in trained
    assert any(observation in m for m in audit["masked"])

    # export in the tools API's shape and import it back: the same calls, names and arguments
    exported = tmp_path / "train.jsonl"
    assert main(["export-data", "--format", "openai", "--protocol", "tool-calls", "--sources", str(out),
                 "--val-size", "0", "--out", str(exported)]) == 0  # fmt: skip
    line = json.loads(exported.read_text().splitlines()[0])
    assert [t["function"]["name"] for t in line["tools"]] == ["stock", "price", "finish"]
    back = read_any(exported)
    assert sorted((t.question, [(x.tool, x.arguments) for x in t.turns]) for t in back) == sorted(
        (t.question, [(x.tool, x.arguments) for x in t.turns]) for t in records
    )


@pytest.fixture(scope="module")
def shop_teacher_file(shop, tmp_path_factory) -> Path:
    from chat_standin import ChatStandIn

    out = tmp_path_factory.mktemp("teacher") / "shop.jsonl"
    with ChatStandIn(shop_teacher) as srv, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-howto-0123456789")
        args = ["generate", "--env", str(shop), "--lm", "openai:teacher", "--base-url", srv.url, "--n", "6"]
        assert main([*args, "--out", str(out)]) == 0
    return out


def test_the_datamodule_mixes_a_builtin_and_a_users_environment(shop_teacher_file, assets, smollm2_dir):
    """FireAct's HotpotQA records and the shop's, one mix; the loss on each agent's own text only."""
    from fireact.modules.datamodule import TrajectoryDataModule

    dm = TrajectoryDataModule(tokenizer=smollm2_dir, sources=[str(shop_teacher_file), str(assets / "fireact_gpt.jsonl")],
                              mix={"shop/react": 6, "hotpotqa/react": 2}, val_size=0, cutoff=1024)  # fmt: skip
    dm.setup("fit")
    cells = {c["cell"]: c["realised"] for c in dm.provenance["cells"]}
    assert cells == {"shop/react": 6, "hotpotqa/react": 2}
    tok = dm.tokenizer
    for i in dm.train_indices:
        traj = dm.trajectories[i]
        (row,) = dm._rows([traj])[0]
        trained = tok.decode(row.input_ids[row.trained].tolist())
        assert "Observation" not in trained and "Question" not in trained, trained
        if traj.task == "shop":
            assert "price[{" in trained and "shop's stock" not in trained
            assert "shop's stock" in tok.decode(row.input_ids.tolist())  # the instructions are in the prompt


@pytest.mark.parametrize("protocol", ["react", "tool-calls"])
def test_eval_runs_a_users_environment_with_a_local_model(shop, tiny_model_dir, tmp_path, protocol):
    out = tmp_path / "eval.jsonl"
    args = ["eval", "--env", str(shop), "--lm", f"hf:{tiny_model_dir}", "--n", "3", "--max-tokens", "8"]
    assert main([*args, "--protocol", protocol, "--out", str(out)]) == 0
    records = read_trajectories(out)
    assert len(records) == 3 and {t.task for t in records} == {"shop"} and all(t.reward == 0.0 for t in records)
    assert [s["function"]["name"] for s in records[0].tools] == ["stock", "price", "finish"]


def test_grpo_questions_and_reward_come_from_the_environment(shop, tmp_path):
    from fireact.data.rewards import episode_reward
    from fireact.data.trajectory import Trajectory
    from fireact.modules.questions import QuestionDataModule
    from fireact.rollout.config import RolloutConfig

    dm = QuestionDataModule(pool=RolloutConfig(env=str(shop), env_args={"n": 12}), questions_per_step=2)
    dm.setup("fit")
    assert len(dm.questions) == 12 and {q.task for q in dm.questions} == {"shop"}
    half = Trajectory("Q?", "3.0", "shop", "react", [], "3.1", em=0.0, reward=0.5)
    malformed = Trajectory("Q?", "3.0", "shop", "react", [], None, reward=0.5, end_reason="no_action")
    assert (episode_reward(half, "env"), episode_reward(half, "em"), episode_reward(malformed, "env", 0.2)) == (
        0.5,
        0.0,
        0.3,
    )
    exclude = RolloutConfig(env=str(shop), env_args={"n": 12}, n=3)
    with pytest.raises(Exception, match="training questions are also evaluated"):
        QuestionDataModule(pool=RolloutConfig(env=str(shop), env_args={"n": 12}), exclude=[exclude]).setup("fit")
