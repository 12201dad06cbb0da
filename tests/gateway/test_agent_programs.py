"""Agent programs written with third-party frameworks (the OpenAI Agents SDK, LangGraph's prebuilt ReAct
agent), unchanged but for their base URL, run through the recording gateway: a scripted teacher
behind it (standing in for GPT-4) gives real tool-using episodes; a tiny local model behind it gives
token-exact episodes that train an expert-iteration round and a GRPO step on exactly the served ids."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from chat_standin import ChatStandIn

from fireact.data.recordings import RECORD_FILE, read_recording
from fireact.data.synthetic import write_world
from fireact.data.tasks import Example
from fireact.data.token_log import training_rows
from fireact.gateway.driver import load_agent, run_program
from fireact.gateway.upstream import UpstreamChat
from fireact.rollout.config import RolloutConfig

PROGRAMS = Path(__file__).resolve().parents[1] / "support" / "agent_programs"
EXAMPLES = [Example("q1", "How long is the Nile?", "6650 km", "almanac"),
            Example("q2", "How long is the Amazon?", "6400 km", "almanac")]  # fmt: skip


def almanac_teacher(body: dict) -> dict | str:
    """Look the river up, then answer with what the almanac said."""
    results = [m for m in body["messages"] if m["role"] == "tool"]
    if results:
        return f"By the almanac: {results[-1]['content']}"
    question = next(m["content"] for m in body["messages"] if m["role"] == "user")
    topic = "Nile" if "Nile" in str(question) else "Amazon"
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": json.dumps({"topic": topic})},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}


@pytest.mark.parametrize("program", ["openai_agents_program.py", "langgraph_program.py"])
def test_third_party_programs_are_recorded_through_the_gateway_unchanged(program, tmp_path):
    with ChatStandIn(almanac_teacher) as teacher:
        trajs, runs = run_program(UpstreamChat(teacher.url, "gpt-teacher"), load_agent(PROGRAMS / program), EXAMPLES,
                                  1, tmp_path / "rec")  # fmt: skip
    assert [(r.reward, r.error) for r in runs] == [(1.0, None), (1.0, None)]
    sent = {t["function"]["name"] for t in teacher.seen[0]["body"]["tools"]}
    assert sent == {"lookup", "divide"}
    for t, e in zip(sorted(trajs, key=lambda t: t.id), EXAMPLES):
        assert (t.task, t.id, t.reward, t.source, t.token_turns) == ("almanac", e.id, 1.0, "gateway", None)
        assert {x["function"]["name"] for x in t.tools} == sent and "almanac" in t.instructions
        assert t.question == e.question and t.turns[0].tool == "lookup" and e.answer in t.turns[0].observation
        assert t.finished and e.answer in t.prediction


@pytest.mark.slow(seconds=15)
def test_a_programs_runs_train_an_expert_iteration_round_and_a_grpo_step_on_the_served_tokens(
    tiny_model_dir, tmp_path, monkeypatch
):
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fireact.modules.datamodule import TrajectoryDataModule
    from fireact.modules.expert_iteration import ExpertIteration
    from fireact.modules.grpo import GRPOLM
    from fireact.modules.questions import QuestionDataModule

    monkeypatch.setenv("FIREACT_TEST_REWARD", "sample")  # a random tiny model: each group gets a winner
    program = str(PROGRAMS / "openai_agents_program.py")
    world = write_world(tmp_path / "world", n_people=20, n_dev=4, seed=3)

    # one GRPO step whose sampler is the program: the ratio to the served log-probs is 1 (same ids, same weights)
    pl.seed_everything(0)
    module = GRPOLM(model=tiny_model_dir, group_size=2, agent=program, lora_dropout=0.0, lr=1e-2, warmup=0.0,
                    rollouts=RolloutConfig(temperature=1.0, batch_size=4))  # fmt: skip
    data = QuestionDataModule(pool=RolloutConfig(tasks=["synthetic"], split="train"), questions_per_step=2,
                              data_dir=str(world))  # fmt: skip
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=1, limit_val_batches=0, log_every_n_steps=1,
                         logger=CSVLogger(tmp_path, name="g"), enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, data)
    (row,) = [r for r in csv.DictReader(open(next(tmp_path.glob("g/*/metrics.csv")))) if r.get("train/reward_mean")]
    assert float(row["train/reward_mean"]) == 0.5 and float(row["train/trained_tokens_per_sec"]) > 0
    assert abs(float(row["train/ratio_mean"]) - 1) < 1e-4
    assert (tmp_path / "recordings" / "rank0" / RECORD_FILE).is_file()

    # one expert-iteration round over the program: sampled through the gateway, rewarded kept, trained
    torch.manual_seed(0)
    start = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=8, lora_alpha=16))
    start.save_pretrained(tmp_path / "start")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "start")  # as `fireact export` writes it
    config = {
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "limit_val_batches": 0,
                    "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"model": tiny_model_dir, "lr": 0.01, "warmup": 0, "lora_r": 8, "lora_alpha": 16},
        "data": {"class_path": "fireact.modules.datamodule.TrajectoryDataModule",
                 "init_args": {"tokenizer": tiny_model_dir, "cutoff": 512, "val_size": 0, "batch_size": 2,
                               "protocol": "tool-calls", "data_dir": str(world)}},
    }  # fmt: skip
    (tmp_path / "sft.yaml").write_text(json.dumps(config))
    loop = ExpertIteration(train_config=str(tmp_path / "sft.yaml"), init_adapter=str(tmp_path / "start"),
                           out=str(tmp_path / "ei"), rounds=1, agent=program, data_dir=str(world),
                           pool=RolloutConfig(tasks=["synthetic"], split="train", n=2, samples=2, batch_size=4),
                           validation=RolloutConfig(tasks=["synthetic"], split="dev", n=2, batch_size=4))  # fmt: skip
    (record,) = loop.run()
    assert record["episodes"] == 4 and record["success_rate"] == 0.5 and record["kept"] >= 1
    assert (tmp_path / "ei" / "round1" / "adapter" / "adapter_model.safetensors").is_file()

    # the trained rows of the recording are the served ids, and only they carry the loss
    raw = {
        json.loads(line)["episode"]: json.loads(line) for line in (tmp_path / "ei" / "recordings" / RECORD_FILE).open()
    }
    dm = TrajectoryDataModule(tokenizer=tiny_model_dir, sources=[str(tmp_path / "ei" / "recordings")],
                              protocol="tool-calls", cutoff=4096, val_size=0, batch_size=2, data_dir=str(world))  # fmt: skip
    dm.setup("fit")
    rewarded = [t for t in read_recording(tmp_path / "ei" / "recordings").trajectories if t.reward == 1.0]
    assert len(dm.train_set.rows) == sum(len(training_rows(t.token_turns)) for t in rewarded) > 0
    served = sorted(tuple(i for c in raw[t.meta["episode"]]["calls"] for i in c["token_ids"]) for t in rewarded)
    trained = sorted(tuple(int(i) for i in r.input_ids[r.trained]) for r in dm.train_set.rows)
    assert trained == served


def test_the_howtos_program_runs_as_printed_with_its_mcp_tools(tmp_path, monkeypatch):
    """docs/howto/gateway.md shows experiments/agents/company_db_agent.py (included from the file):
    it runs through the gateway with the scripted teacher behind --upstream, MCP tools and all."""
    import threading

    from fireact.env.company_db import load_environment
    from fireact.serve.http_app import HTTPServer

    agents = Path(__file__).resolve().parents[2] / "experiments" / "agents"
    monkeypatch.syspath_prepend(str(agents))
    from company_db_teacher import app

    teacher = HTTPServer(app, "127.0.0.1", 0)
    threading.Thread(target=teacher.serve_forever, daemon=True).start()
    env = load_environment("test")
    try:
        rows = list(env.rows().values())
        kinds = {r["kind"]: r for r in rows}  # one question of each kind: a lookup, a count, two divisions
        examples = [Example(r["id"], r["question"], r["answer"], "company-db") for r in kinds.values()]
        url = f"http://127.0.0.1:{teacher.server_address[1]}/v1"
        trajs, runs = run_program(UpstreamChat(url), load_agent(agents / "company_db_agent.py"), examples, 1,
                                  tmp_path / "rec")  # fmt: skip
    finally:
        env.close()
        teacher.shutdown()
        teacher.server_close()
    assert [(r.reward, r.error) for r in runs] == [(1.0, None)] * len(examples) and len(examples) == 4
    for t in trajs:
        assert [s.tool for s in t.turns[:2]] == ["list_tables", "describe_table"] and "read_query" in {
            s.tool for s in t.turns}  # fmt: skip
        assert all(s.observation for s in t.turns if s.tool)  # the MCP server's own answers
