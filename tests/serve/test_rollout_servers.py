"""Rollouts on OpenAI-compatible servers (issue 29) against two real `fireact serve` HTTP servers:
token-exact episodes, requests spread and failed over, runtime LoRA loading and its safety (issue 30),
and GRPO training from server rollouts with the server/trainer log-prob mismatch measured."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from fireact.data.synthetic import write_world
from fireact.errors import FireactError
from fireact.lm.hf import HFLM
from fireact.lm.token_servers import TokenServersLM
from fireact.rollout.config import RolloutConfig
from fireact.rollout.runners import run_rollouts
from fireact.serve.server import make_server


def serve(model_dir: str, **kw):
    server = make_server(HFLM(model_dir, dtype=torch.float32), port=0, model_name="tiny", **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def stop(server) -> None:
    server.shutdown()
    server.server_close()
    server.service.close()


def post(server, route: str, body: dict, key: str | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    conn.request("POST", f"/v1/{route}", json.dumps(body).encode(), headers)
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"{}")


def complete(server, prompt: list[int], model: str = "tiny") -> dict:
    status, body = post(server, "completions", {"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0,
                                                "logprobs": 1, "return_token_ids": True})  # fmt: skip
    assert status == 200, body
    return body["choices"][0]


def lora(model_dir: str, out: Path, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))  # fmt: skip
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # far from the base: the adapter changes what is decoded
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return write_world(tmp_path_factory.mktemp("world"), n_people=20, n_dev=6)


def test_episodes_on_two_servers_are_the_local_engines_token_for_token(tiny_model_dir, world):
    """Greedy episodes played on two servers record the same prompt and sampled ids, and the same
    log-probs, as the local engine; both servers answered."""
    local = HFLM(tiny_model_dir, dtype=torch.float32)
    servers = [serve(tiny_model_dir) for _ in range(2)]
    try:
        remote = TokenServersLM([url(s) for s in servers], "tiny", local.tokenizer)
        remote.check()
        cfg = RolloutConfig(tasks=["synthetic"], split="dev", max_turns=3, max_tokens=12, record_tokens=True,
                            batch_size=4)  # fmt: skip
        examples = cfg.all_examples(world)
        tool = cfg.make_tool(world)
        mine, theirs = (run_rollouts(lm, tool, examples, cfg) for lm in (local, remote))
        assert all(r > 0 for r in remote.requests) and sum(remote.requests) >= len(examples)
        for a, b in zip(mine, theirs):
            assert [t.turns for t in (a, b)][0] == b.turns
            assert [(x.keep, x.prompt, x.generated) for x in a.token_turns] == [
                (x.keep, x.prompt, x.generated) for x in b.token_turns
            ]
            for x, y in zip(a.token_turns, b.token_turns):
                torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-4, rtol=0)
    finally:
        for s in servers:
            stop(s)


def test_bad_completion_requests_name_the_field(tiny_model_dir):
    server = serve(tiny_model_dir)
    try:
        vocab = len(server.model.lm.tokenizer)
        ok = {"model": "tiny", "prompt": [1, 2, 3], "max_tokens": 4}
        for change, param in (({"prompt": []}, "prompt"), ({"prompt": [vocab]}, "prompt"), ({"prompt": [[1], [2]]}, "prompt"),
                              ({"logprobs": 5}, "logprobs"), ({"stream": True}, "stream"), ({"seed": -1}, "seed"),
                              ({"stop": ["x"] * 17}, "stop"), ({"prompt": [1] * 2046, "max_tokens": 8}, "prompt")):  # fmt: skip
            status, body = post(server, "completions", {**ok, **change})
            assert status == 400 and body["error"]["param"] == param, (change, body)
        choice = complete(server, [1, 2, 3])
        assert len(choice["token_ids"]) == len(choice["logprobs"]["token_logprobs"]) and choice["prompt_token_ids"] == [
            1,
            2,
            3,
        ]
    finally:
        stop(server)


def test_a_request_seed_makes_sampling_repeatable_and_distinct_seeds_differ(tiny_model_dir):
    """Two servers started alike would draw alike: each rollout request carries its own seed."""
    servers = [serve(tiny_model_dir) for _ in range(2)]
    try:
        prompt = list(range(100, 120))
        body = {"model": "tiny", "prompt": prompt, "max_tokens": 12, "temperature": 1.0, "return_token_ids": True}
        draw = [[post(s, "completions", {**body, "seed": seed})[1]["choices"][0]["token_ids"] for seed in (1, 2)]
                for s in servers]  # fmt: skip
        assert draw[0] == draw[1] and draw[0][0] != draw[0][1]
        lm = TokenServersLM([url(s) for s in servers], "tiny", servers[0].model.lm.tokenizer, seed=5)
        out = lm.complete([prompt] * 4, [], 12, 1.0)
        assert len({tuple(c.token_ids) for c in out}) == 4 and lm.requests == [2, 2]
    finally:
        for s in servers:
            stop(s)


def test_a_dead_server_is_skipped_and_a_wrong_setup_names_the_url(tiny_model_dir):
    live, dying = serve(tiny_model_dir), serve(tiny_model_dir)
    try:
        tok = HFLM(tiny_model_dir, dtype=torch.float32).tokenizer
        lm = TokenServersLM([url(dying), url(live)], "tiny", tok, timeout=10)
        stop(dying)
        out = lm.complete([f"Question {i}" for i in range(4)], ["\n"], 6, 0.0)
        assert all(c.token_ids for c in out) and lm.requests == [0, 4]  # every request reached the live one
        with pytest.raises(FireactError, match=f"rollout server {url(dying)}/v1: .*check that it is running"):
            TokenServersLM([url(live), url(dying)], "tiny", tok, timeout=5).check()
        with pytest.raises(FireactError, match=f"rollout server {url(live)}/v1 does not serve 'llama'"):
            TokenServersLM([url(live)], "llama", tok).check()
        with pytest.raises(FireactError, match="every rollout server failed"):
            TokenServersLM([url(dying)], "tiny", tok, timeout=5).complete(["Q"], [], 4, 0.0)
    finally:
        stop(live)


def test_adapter_loading_is_off_unless_allowed_and_only_under_its_folder(tiny_model_dir, tmp_path):
    allowed = tmp_path / "allowed"
    good = lora(tiny_model_dir, allowed / "good", seed=1)
    outside = lora(tiny_model_dir, tmp_path / "outside", seed=2)
    (allowed / "link").symlink_to(outside)
    (allowed / "bin").mkdir()
    (allowed / "bin" / "adapter_config.json").write_text((good / "adapter_config.json").read_text())
    torch.save({}, allowed / "bin" / "adapter_model.bin")  # pickled weights: never loaded
    off = serve(tiny_model_dir)
    try:
        status, body = post(off, "load_lora_adapter", {"lora_name": "a", "lora_path": str(good)})
        assert status == 404 and "--allow-adapter-loading" in body["error"]["message"]
    finally:
        stop(off)
    server = serve(tiny_model_dir, adapter_dir=str(allowed))
    try:
        for path, says in ((str(outside), "outside the allowed"), ("../outside", "outside the allowed"),
                           ("link", "outside the allowed"), ("bin", "adapter_model.safetensors"),
                           ("http://example.com/a", "folder under"), ("missing", "no such folder")):  # fmt: skip
            status, body = post(server, "load_lora_adapter", {"lora_name": "a", "lora_path": path})
            assert status == 400 and says in body["error"]["message"], (path, body)
        status, body = post(server, "load_lora_adapter", {"lora_name": "tiny", "lora_path": "good"})
        assert status == 400 and body["error"]["param"] == "lora_name"  # the served name cannot be taken
        assert server.model.adapters.versions == {}
    finally:
        stop(server)


def test_loaded_adapters_decode_as_a_local_peft_model_and_bad_ones_change_nothing(tiny_model_dir, tmp_path):
    from conftest import make_tiny_model

    allowed = tmp_path / "allowed"
    a = lora(tiny_model_dir, allowed / "a", seed=1)
    lora(tiny_model_dir, allowed / "b", seed=2)
    other = make_tiny_model(tmp_path / "other", tiny_model_dir, hidden=32)
    lora(other, allowed / "other-base", seed=3)
    server = serve(tiny_model_dir, adapter_dir=str(allowed))
    try:
        tok = server.model.lm.tokenizer
        prompt = tok("Question: who wrote the book?")["input_ids"]
        base = complete(server, prompt)
        assert post(server, "load_lora_adapter", {"lora_name": "alpha", "lora_path": "a"})[0] == 200
        status, body = post(server, "load_lora_adapter", {"lora_name": "x", "lora_path": "other-base"})
        assert status == 400 and "another base model" in body["error"]["message"]
        with_a = complete(server, prompt, "alpha")
        expected = HFLM(tiny_model_dir, adapter=str(a), dtype=torch.float32)
        engine = TokenServersLM([url(server)], "alpha", tok)
        assert with_a["token_ids"] != base["token_ids"]
        assert engine.complete([prompt], [], 8, 0.0)[0].text == expected.complete([prompt], [], 8, 0.0)[0].text
        assert complete(server, prompt)["token_ids"] == base["token_ids"]  # the served model is unchanged
        with ThreadPoolExecutor(8) as pool:  # the base and the adapter decoded in one batch, row by row
            mixed = list(pool.map(lambda m: complete(server, prompt, m)["token_ids"], ["tiny", "alpha"] * 4))
        assert mixed == [base["token_ids"], with_a["token_ids"]] * 4 and server.service.job.peak_in_flight > 1
        assert post(server, "load_lora_adapter", {"lora_name": "alpha", "lora_path": "b"})[0] == 200  # in place
        assert complete(server, prompt, "alpha")["token_ids"] != with_a["token_ids"]
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        conn.request("GET", "/v1/models")
        assert [m["id"] for m in json.loads(conn.getresponse().read())["data"]] == ["tiny", "alpha"]
        # an adapter a request waits for is not unloaded: the engine is held between steps while one queues
        hold, go = threading.Event(), threading.Event()
        blocker = threading.Thread(target=server.model.service.run_on_engine, args=(lambda: hold.set() or go.wait(),))
        blocker.start()
        hold.wait()
        waiting = ThreadPoolExecutor(1).submit(complete, server, prompt, "alpha")
        while not server.model.service.job.requests.items:
            time.sleep(0.01)
        unload = ThreadPoolExecutor(1).submit(post, server, "unload_lora_adapter", {"lora_name": "alpha"})
        while len(server.model.service.job.requests.control) < 1:
            time.sleep(0.01)
        go.set()
        assert unload.result()[0] == 409 and waiting.result()["token_ids"]
        blocker.join()
        assert post(server, "unload_lora_adapter", {"lora_name": "alpha"})[0] == 200
        assert post(server, "unload_lora_adapter", {"lora_name": "alpha"})[0] == 404
        assert complete(server, prompt)["token_ids"] == base["token_ids"]
    finally:
        stop(server)


def test_adapter_routes_need_the_key(tiny_model_dir, tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    lora(tiny_model_dir, allowed / "a", seed=1)
    server = serve(tiny_model_dir, adapter_dir=str(allowed), api_key="s3cret")
    try:
        assert post(server, "load_lora_adapter", {"lora_name": "alpha", "lora_path": "a"})[0] == 401
        assert post(server, "load_lora_adapter", {"lora_name": "alpha", "lora_path": "a"}, key="wrong")[0] == 401
        monkeypatch.setenv("FIREACT_API_KEY", "s3cret")  # the client sends the same variable
        lm = TokenServersLM([url(server)], "tiny", server.model.lm.tokenizer)
        lm.check()
        assert lm.push_adapter("alpha", str(allowed / "a")) > 0 and lm.model == "alpha"
        elsewhere = lora(tiny_model_dir, tmp_path / "elsewhere", seed=2)
        with pytest.raises(FireactError, match=f"rollout server {url(server)}/v1 refused adapter .*outside the allowed"
                                               ".*--allow-adapter-loading"):  # fmt: skip
            lm.push_adapter("beta", str(elsewhere))
        assert lm.complete(["Question"], [], 4, 0.0)[0].token_ids
    finally:
        stop(server)
        os.environ.pop("FIREACT_API_KEY", None)


def test_grpo_trains_on_server_rollouts_with_the_mismatch_measured(tiny_model_dir, world, tmp_path, monkeypatch):
    """Two GRPO steps whose episodes two servers sample: the step's LoRA is pushed to both before
    it samples, the trained ids are the servers' (their log-probs match the trainer's: mismatch ~0)."""
    import csv

    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from fireact.modules import grpo
    from fireact.modules.grpo import GRPOLM
    from fireact.modules.questions import QuestionDataModule

    # a random tiny model never answers: reward the parity of its sampled ids instead, so that the
    # samples of a question differ in reward and their tokens are trained (the path under test)
    monkeypatch.setattr(grpo, "episode_reward", lambda t, *_: float(sum(sum(x.generated) for x in t.token_turns) % 2))

    pushed = tmp_path / "pushed"
    pushed.mkdir()
    servers = [serve(tiny_model_dir, adapter_dir=str(pushed)) for _ in range(2)]
    try:
        pl.seed_everything(0)
        module = GRPOLM(
            model=tiny_model_dir, group_size=2, data_dir=str(world), rollout_servers=[url(s) for s in servers],
            server_model="tiny", push_dir=str(pushed), lora_dropout=0.0, lr=1e-2, warmup=0.0,
            rollouts=RolloutConfig(temperature=1.0, max_turns=2, max_tokens=8, batch_size=4),
        )  # fmt: skip
        data = QuestionDataModule(pool=RolloutConfig(tasks=["synthetic"], split="train"), questions_per_step=2,
                                  data_dir=str(world))  # fmt: skip
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, max_steps=2, limit_val_batches=0, logger=CSVLogger(tmp_path, name="g"),
            log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
            default_root_dir=tmp_path,
        )  # fmt: skip
        trainer.fit(module, data)
        rows = [r for r in csv.DictReader(open(next(tmp_path.glob("g/*/metrics.csv")))) if r.get("train/reward_mean")]
        assert len(rows) == 2
        trained = [r for r in rows if float(r["train/trained_tokens_per_sec"]) > 0]
        assert trained, "no step had a group with different rewards: nothing was trained"
        assert all(
            float(r["train/logprob_mismatch"]) < 1e-4 and float(r["train/tis_capped_frac"]) == 0 for r in trained
        )
        assert all(abs(float(r["train/ratio_mean"]) - 1) < 1e-4 for r in trained)
        assert all(float(r["train/adapter_push_seconds"]) > 0 for r in rows)
        for s in servers:  # step 1's adapter replaced step 0's on both servers
            assert list(s.model.adapters.versions) == ["fireact-step1"]
            assert s.service.job.peak_in_flight >= 1
        assert sorted(p.name for p in pushed.iterdir()) == ["fireact-step0", "fireact-step1"]
        # a wrong model name stops the run before any step, naming the server
        wrong = GRPOLM(model=tiny_model_dir, group_size=2, data_dir=str(world), rollout_servers=[url(servers[0])],
                       server_model="llama")  # fmt: skip
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_progress_bar=False,
                             enable_checkpointing=False, default_root_dir=tmp_path)  # fmt: skip
        with pytest.raises(FireactError, match=f"rollout server {url(servers[0])}/v1 does not serve 'llama'"):
            trainer.fit(wrong, data)
    finally:
        for s in servers:
            stop(s)


def test_expert_iteration_samples_on_servers_as_it_does_locally(tiny_model_dir, world, tmp_path):
    """An expert-iteration round's sampling on two servers, with the round's adapter pushed by path,
    plays the same greedy episodes as the adapter loaded in this process."""
    from transformers import AutoTokenizer

    from fireact.data.prompt_style import PromptStyle
    from fireact.modules.expert_iteration import ExpertIteration

    allowed = tmp_path / "runs"
    start = lora(tiny_model_dir, allowed / "start" / "adapter", seed=1)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(start)
    PromptStyle(base_model=tiny_model_dir).save(start)
    cfg = RolloutConfig(tasks=["synthetic"], split="dev", max_turns=3, max_tokens=12, batch_size=4)
    servers = [serve(tiny_model_dir, adapter_dir=str(allowed)) for _ in range(2)]
    try:

        def loop(**kw):
            return ExpertIteration(train_config="unused.yaml", init_adapter=str(start), out=str(allowed / "ei"),
                                   data_dir=str(world), **kw)  # fmt: skip

        here = loop().play(str(start), cfg, world, "test")
        there = loop(rollout_servers=[url(s) for s in servers], server_model="tiny").play(
            str(start), cfg, world, "test"
        )
        assert [t.turns for t in there] == [t.turns for t in here] and len(here) == 6
        assert all(list(s.model.adapters.versions) == ["fireact-start-adapter"] for s in servers)
    finally:
        for s in servers:
            stop(s)
