"""Mixing, held-out split, truncation, packing isolation and DDP sharding of TrajectoryDataModule."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from fireact.data.batching import model_inputs, pack_rows
from fireact.data.mixing import question_key, resolve_counts, sample_cell, validate_mix
from fireact.data.sources import sha256_file
from fireact.data.token_row import IGNORE_INDEX, TokenRow
from fireact.errors import FireactError
from fireact.modules.datamodule import PROVENANCE_FILE, TrajectoryDataModule

MULTI = "finetune/gpt_format/multitask_multimethod.jsonl"
MIX = {"hotpotqa/react": 300, "hotpotqa/cot": 187, "strategyqa/react": 0.25}


def make_dm(data_dir, smollm2_dir, **kw) -> TrajectoryDataModule:
    args = {"tokenizer": smollm2_dir, "sources": [MULTI], "data_dir": str(data_dir), "mix": MIX, "val_size": 40}
    dm = TrajectoryDataModule(**{**args, **kw})
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def dm(data_dir, smollm2_dir, tmp_path_factory):
    return make_dm(data_dir, smollm2_dir, run_dir=str(tmp_path_factory.mktemp("run")))


def test_fraction_rule_and_validation():
    assert resolve_counts(MIX, {"hotpotqa/react": 1, "hotpotqa/cot": 1, "strategyqa/react": 1}) == {
        "hotpotqa/react": 300,
        "hotpotqa/cot": 187,
        "strategyqa/react": round(0.25 * 487 / 0.75),
    }
    assert resolve_counts({"a/react": 0.5, "b/cot": 0.5}, {"a/react": 30, "b/cot": 10}) == {"a/react": 20, "b/cot": 20}
    assert resolve_counts({"a/react": 0.1}, {"a/react": 5}, total=1000) == {"a/react": 100}
    for bad, msg in [({"hotpotqa": 3}, "task/method"), ({"a/react": 1.5}, "fraction"), ({"a/react": -1}, "negative")]:
        with pytest.raises(FireactError, match=msg):
            validate_mix(bad)
    with pytest.raises(FireactError, match="sum to"):
        resolve_counts({"a/react": 10, "b/react": 0.6, "c/react": 0.5}, {"a/react": 1, "b/react": 1, "c/react": 1})
    with pytest.raises(FireactError, match="has none|have none"):
        resolve_counts({"a/react": 3}, {"b/react": 3})


def test_sampling_without_then_with_replacement():
    pool = list(range(100, 110))
    sub = sample_cell(pool, 7, seed=1, cell="x/react")
    assert len(set(sub)) == 7 and set(sub) <= set(pool)
    assert sub == sample_cell(pool, 7, seed=1, cell="x/react") != sample_cell(pool, 7, seed=2, cell="x/react")
    up = Counter(sample_cell(pool, 25, seed=1, cell="x/react"))
    assert set(up) == set(pool) and sorted(up.values()) == [2] * 5 + [3] * 5


def test_mix_counts_and_provenance(dm, data_dir):
    prov = dm.provenance
    cells = {c["cell"]: c for c in prov["cells"]}
    assert {c: cells[c]["realised"] for c in cells} == {
        "hotpotqa/react": 300,
        "hotpotqa/cot": 187,
        "strategyqa/react": 162,
    }
    realised = Counter(f"{dm.trajectories[i].task}/{dm.trajectories[i].method}" for i in dm.train_indices)
    assert realised == Counter({c: v["realised"] for c, v in cells.items()})
    assert cells["hotpotqa/cot"]["sampling"] == "upsampled" and cells["hotpotqa/cot"]["available"] < 187
    assert cells["hotpotqa/react"]["sampling"] == "subsampled" and cells["hotpotqa/react"]["distinct"] == 300
    assert sum(c["tokens"] for c in cells.values()) == sum(
        len(dm.train_set.rows[k]) for k in range(len(dm.train_indices))
    )
    on_disk = json.loads((dm._log_dir() / PROVENANCE_FILE).read_text())
    assert on_disk["cells"] == prov["cells"]
    (src,) = on_disk["sources"]
    assert src["sha256"] == sha256_file(data_dir / MULTI) and src["records"] == 2063
    # every planned batch covers each mixed example exactly once
    planned = Counter(i for batch in dm.train_set.batches for row in batch for i in row)
    assert planned == Counter(range(len(dm.train_indices)))


def test_heldout_is_disjoint_by_question(dm):
    train_q = {question_key(dm.trajectories[i].question) for i in dm.train_indices}
    val_q = {question_key(dm.trajectories[i].question) for i in dm.val_indices}
    assert len(val_q) <= 40 and val_q and not train_q & val_q
    assert dm.provenance["val_examples"] == len(dm.val_indices) == sum(len(r) for b in dm.val_set.batches for r in b)


def test_deterministic_given_seed(dm, data_dir, smollm2_dir):
    again = make_dm(data_dir, smollm2_dir)
    assert again.train_indices == dm.train_indices and again.train_set.batches == dm.train_set.batches
    first = [b["example_index"].tolist() for b in again.train_dataloader()]
    assert first == [b["example_index"].tolist() for b in again.train_dataloader()]  # same seed, same order
    other = make_dm(data_dir, smollm2_dir, seed=7)
    assert other.train_indices != dm.train_indices


def test_batches_carry_stats(dm):
    for batch in list(dm.train_dataloader())[:5]:
        labels, mask = batch["labels"], batch["attention_mask"]
        assert batch["num_trained_tokens"] == (labels != IGNORE_INDEX).sum() == (labels[:, 1:] != IGNORE_INDEX).sum()
        assert batch["num_real_tokens"] == mask.sum() and batch["num_pad_tokens"] == mask.numel() - mask.sum()
        assert (batch["position_ids"][mask.bool()] < mask.sum(1).max()).all()
    assert dm.provenance["train_padding_fraction"] < 0.1


def test_truncation_drop_and_truncate_are_counted(data_dir, smollm2_dir):
    cut = 200
    dropped = make_dm(
        data_dir,
        smollm2_dir,
        mix={"hotpotqa/react": 0.5, "strategyqa/cot": 0.5},
        cutoff=cut,
        truncation="drop",
        val_size=0,
    )
    kept = make_dm(
        data_dir, smollm2_dir, mix=None, sources=["finetune/gpt_format/hotpotqa.jsonl"], cutoff=cut, val_size=0
    )
    assert dropped.provenance["dropped_over_cutoff_total"] > 0 and dropped.provenance["truncated_total"] == 0
    assert max(len(x) for x in dropped.train_set.rows) <= cut
    n_over = sum(1 for x in kept.train_set.rows if len(x) == cut)
    assert kept.provenance["truncated_total"] > 0 and kept.provenance["truncated_total"] <= n_over
    assert max(len(x) for x in kept.train_set.rows) == cut


def test_mask_observations_false_trains_the_observations_too(data_dir, smollm2_dir):
    """The same examples, the same tokens; unmasked, each example's labels are one run from the
    first agent token to the last, a superset of the masked labels, and the card says which."""
    kw = {"mix": None, "sources": ["finetune/gpt_format/hotpotqa.jsonl"], "cutoff": 100000, "val_size": 0}
    masked = make_dm(data_dir, smollm2_dir, **kw)
    unmasked = make_dm(data_dir, smollm2_dir, mask_observations=False, **kw)
    assert unmasked.provenance["mask_observations"] is False and masked.provenance["mask_observations"] is True
    for m, u in zip(masked.train_set.rows, unmasked.train_set.rows):
        m, u = m.labels, u.labels
        trained = np.flatnonzero(u != IGNORE_INDEX)
        assert (trained == np.arange(trained[0], trained[-1] + 1)).all()  # one run: observations inside
        assert ((m == IGNORE_INDEX) | (m == u)).all()  # a superset of the masked labels
        assert trained[0] == np.flatnonzero(m != IGNORE_INDEX)[0]  # the question and prompt never
    count = lambda rows: sum(int(r.trained.sum()) for r in rows)  # noqa: E731
    assert count(unmasked.train_set.rows) > 1.5 * count(masked.train_set.rows)


def test_bad_inputs(data_dir, smollm2_dir):
    with pytest.raises(FireactError, match="not found"):
        make_dm(data_dir, smollm2_dir, sources=["nope.jsonl"])
    with pytest.raises(FireactError, match="none"):
        make_dm(data_dir, smollm2_dir, sources=["finetune/gpt_format/hotpotqa.jsonl"], mix={"mmlu/cot": 10})


def test_two_ranks_get_disjoint_shares_and_equal_batch_counts(dm):
    """Lightning's own DistributedSampler injection (what DDP and DeepSpeed run) on both ranks."""
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import DistributedSampler

    loader = dm.train_dataloader()
    shares = []
    for rank in (0, 1):
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        shares.append([b["example_index"].tolist() for b in _update_dataloader(loader, sampler)])
    assert len(shares[0]) == len(shares[1]) == -(-len(loader.dataset) // 2)
    seen = [{i for b in share for i in b} for share in shares]
    n_batches = len(loader.dataset)
    if n_batches % 2 == 0:
        assert not seen[0] & seen[1]
    else:  # DistributedSampler repeats one batch to even the shares out
        assert len(seen[0] & seen[1]) <= max(len(b) for share in shares for b in share)
    assert seen[0] | seen[1] == set(range(len(dm.train_indices)))


def test_pack_rows_fit_capacity():
    lengths = [500, 12, 300, 200, 100, 511, 1, 250, 250]
    rows = pack_rows(lengths, 512)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 512 for r in rows)
    assert len(rows) == -(-sum(lengths) // 512)  # optimal here: 5


def per_example_losses(model, batch, plan, lengths, **inputs) -> dict[int, float]:
    """Mean next-token loss of each example of a planned batch (rows of example indices)."""
    with torch.no_grad():
        logits = model(**(inputs or model_inputs(batch, model))).logits.float()
    labels = batch["labels"]
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(labels.size(0), -1)
    out = {}
    for b, row in enumerate(plan):
        at = 0
        for i in row:
            n = lengths[i]
            keep = labels[b, at + 1 : at + n] != IGNORE_INDEX
            out[i] = (ce[b, at : at + n - 1][keep].sum() / keep.sum()).item()
            at += n
    return out


def all_losses(model, dm) -> dict[int, float]:
    lengths = [len(x) for x in dm.train_set.rows]
    out = {}
    for k, plan in enumerate(dm.train_set.batches):
        out |= per_example_losses(model, dm.train_set[k], plan, lengths)
    return out


@pytest.fixture(scope="module")
def packed_and_plain(data_dir, tiny_model_dir):
    kw = {"tokenizer": tiny_model_dir, "sources": [MULTI], "val_size": 0}
    kw |= {
        "data_dir": str(data_dir),
        "mix": {"hotpotqa/react": 12},
        "batch_size": 2,
        "cutoff": 384,
        "truncation": "drop",
    }
    packed = TrajectoryDataModule(packing=True, **kw)
    plain = TrajectoryDataModule(packing=False, **kw)
    packed.setup("fit"), plain.setup("fit")
    return packed, plain


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packing_keeps_examples_apart(packed_and_plain, tiny_model_dir, attn):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attn).eval()
    packed, plain = packed_and_plain
    assert packed.train_indices == plain.train_indices
    assert any(len(row) > 1 for batch in packed.train_set.batches for row in batch)
    loss_packed, loss_plain = all_losses(model, packed), all_losses(model, plain)
    assert set(loss_packed) == set(loss_plain) == set(range(12))
    for k in loss_plain:
        assert loss_packed[k] == pytest.approx(loss_plain[k], rel=1e-4, abs=1e-4), k
    # the same packed rows under a plain padding mask let examples attend to each other: losses move
    k = next(k for k, plan in enumerate(packed.train_set.batches) if any(len(row) > 1 for row in plan))
    batch, plan = packed.train_set[k], packed.train_set.batches[k]
    lengths = [len(x) for x in packed.train_set.rows]
    ones = torch.ones_like(batch["input_ids"])
    leaked = per_example_losses(
        model,
        batch,
        plan,
        lengths,
        input_ids=batch["input_ids"],
        attention_mask=ones,
        position_ids=batch["position_ids"],
    )
    later = [i for row in plan for i in row[1:]]  # the first example of a row sees nothing before it either way
    assert later and all(abs(leaked[i] - loss_plain[i]) > 1e-4 for i in later)


def test_lightning_cli_config_keeps_counts_and_fractions():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(TrajectoryDataModule, "data")
    cfg = parser.parse_string("data:\n  mix: {hotpotqa/react: 500, strategyqa/react: 0.25}\n  packing: true\n")
    assert cfg.data.mix == {"hotpotqa/react": 500, "strategyqa/react": 0.25}
    assert isinstance(cfg.data.mix["hotpotqa/react"], int) and isinstance(cfg.data.mix["strategyqa/react"], float)


@pytest.mark.parametrize("packing", [True, False])
def test_trainer_fit_runs_on_the_batches(data_dir, tiny_model_dir, tmp_path, packing):
    """A real Trainer consumes the loaders (planned-batch items, 4D masks) and gets the card in its log dir."""
    import lightning.pytorch as pl
    from transformers import AutoModelForCausalLM

    class TinyLM(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
            self.seen = []

        def training_step(self, batch, _):
            self.seen.append(int(batch["num_trained_tokens"]))
            return self.model(**model_inputs(batch, self.model)).loss

        def validation_step(self, batch, _):
            self.log(
                "val_loss", self.model(**model_inputs(batch, self.model)).loss, batch_size=int(batch["num_examples"])
            )

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    dm = TrajectoryDataModule(
        tokenizer=tiny_model_dir,
        sources=[MULTI],
        data_dir=str(data_dir),
        mix={"hotpotqa/cot": 16},
        val_size=4 if packing else 0,
        batch_size=4,
        cutoff=256,
        packing=packing,
    )
    trainer = pl.Trainer(
        max_steps=2,
        limit_val_batches=1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    module = TinyLM()
    trainer.fit(module, datamodule=dm)
    assert len(module.seen) == 2 and all(n > 0 for n in module.seen)
    card = json.loads((Path(trainer.log_dir) / PROVENANCE_FILE).read_text())
    assert card["packing"] is packing and card["cells"][0]["realised"] == 16
    if packing:
        assert torch.isfinite(trainer.callback_metrics["val_loss"])


@pytest.mark.slow
def test_real_ddp_ranks_train_on_disjoint_shares(data_dir, tiny_model_dir, tmp_path):
    """Two real DDP processes (gloo): same number of steps, no example on both ranks, all covered."""
    import os
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "support" / "ddp_shards.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(script), tiny_model_dir, str(data_dir), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) > 0
    seen = [{i for batch in steps for i in batch} for steps in ranks]
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(24))
    assert json.loads((tmp_path / PROVENANCE_FILE).read_text())["train_examples"] == 24


def test_packed_mask_is_block_diagonal_causal():
    import numpy as np

    from fireact.data.batching import collate

    ids = [np.arange(3) + 10, np.arange(2) + 20, np.arange(4) + 30]
    no = IGNORE_INDEX
    labels = [np.array([no, 11, 12]), np.array([no, 21]), np.array([no, no, 32, 33])]
    rows = [TokenRow(i, lab != no) for i, lab in zip(ids, labels)]
    batch = collate(rows, [[0, 1], [2]], pad_id=0, packed=True)
    mask = batch["attention_mask"][:, 0]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]]
    assert mask[0].int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 1, 1],
    ]
    assert mask[1, 4].int().tolist() == [1, 0, 0, 0, 0]  # the pad sees the first token only: no empty row
    assert mask.diagonal(dim1=-2, dim2=-1).sum() == batch["num_real_tokens"] == 9
    assert batch["num_pad_tokens"] == 1 and batch["num_trained_tokens"] == 5 and batch["num_examples"] == 3


def test_model_inputs_adapt_the_packed_mask_to_the_kernel():
    import numpy as np

    from fireact.data.batching import collate

    ids = [np.arange(3) + 10, np.arange(2) + 20]
    batch = collate([TokenRow(i, np.ones(len(i), bool)) for i in ids], [[0, 1]], pad_id=0, packed=True)
    bool_mask = batch["attention_mask"]
    model = torch.nn.Linear(2, 2).to(torch.float64)
    model.config = type("Config", (), {"_attn_implementation": "eager"})()
    eager = model_inputs(batch, model)
    assert set(eager) == {"input_ids", "attention_mask", "position_ids", "labels"}  # no counts reach the model
    additive = eager["attention_mask"]
    assert additive.dtype == torch.float64
    assert torch.equal(additive == 0, bool_mask) and (additive[~bool_mask] == torch.finfo(torch.float64).min).all()
    assert model_inputs({**batch, **eager}, model)["attention_mask"] is additive  # adapted once, left alone after
    model.config._attn_implementation = "sdpa"
    assert model_inputs(batch, model)["attention_mask"] is bool_mask
    model.config._attn_implementation = "flash_attention_2"
    assert "attention_mask" not in model_inputs(batch, model)  # packed examples found from the position ids


def test_own_jsonl_source_and_only_successful(data_dir, smollm2_dir, tmp_path):
    """This project's trajectory JSONL (as `fireact import` writes it), filtered to successful episodes."""
    from fireact.data.sources import load_source, task_questions
    from fireact.data.trajectory import write_trajectories

    records = load_source(data_dir / "finetune/gpt_format/hotpotqa.jsonl", task_questions(data_dir)).trajectories[:40]
    for k, r in enumerate(records):
        r.em = float(k % 4 != 0)  # every 4th fails
    path = tmp_path / "mine.jsonl"
    write_trajectories(path, records)
    kw = {"tokenizer": smollm2_dir, "sources": [str(path)], "val_size": 0, "mix": None}
    dm = TrajectoryDataModule(only_successful=True, **kw)
    dm.setup()
    assert dm.provenance["skipped"]["unsuccessful"] == 10 and len(dm.train_indices) == 30
    assert all(dm.trajectories[i].em > 0 for i in dm.train_indices)
    assert dm.provenance["sources"][0]["sha256"] == sha256_file(path)
