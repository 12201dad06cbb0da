"""Benchmark: retrieval in the wiki world, before any agent. For each retriever (bm25s over title +
text, all-MiniLM-L6-v2 dense, their reciprocal-rank fusion): recall of the gold supporting titles at
1/3/5, index build time (fresh, into a temporary index dir), size on disk, peak memory of a process
that builds it and of one that loads it, and query latency p50/p99 (one query a call, as the agent
searches). A 16-row SmolLM2-135M decode step is timed in the same run: the reference a search must
be far cheaper than.

Queries: (a) each question's own text on `wiki-eval` (500) and `wiki-val` (200); (b) the search
queries FireAct's trajectories issued for questions of the corpus (GPT-4 fine-tuning trajectories,
and FireAct's released dev rollouts of its fine-tuned agents), each scored against its question's
gold titles.

    python bench/retrieval.py [--retrievers bm25 dense hybrid] [--threads 2] [--out runs/bench/retrieval.json]

Ends with one line per retriever: `retrieval: NAME any@5=... both@5=... p50_ms=... ratio=<decode step / p50>`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def fireact_queries(data_dir: Path, questions: dict[str, set[str]]) -> dict[str, list[tuple[str, set[str]]]]:
    """(query, gold titles) of every search in FireAct's trajectories on a corpus question, by source."""
    from fireact.data.fireact_format import read_fireact_file
    from fireact.data.react_grammar import parse_action
    from fireact.data.trajectory import question_key

    sources = {"gpt-4 fine-tuning trajectories": "finetune/gpt_format/*.jsonl", "released dev rollouts": "trajs/*.json"}
    out: dict[str, list[tuple[str, set[str]]]] = {}
    for name, pattern in sources.items():
        rows = []
        for path in sorted(data_dir.glob(pattern)):
            for traj in read_fireact_file(path):
                gold = questions.get(question_key(traj.question))
                for turn in traj.turns if gold else []:
                    parsed = parse_action(turn.action)
                    if parsed and parsed[0] == "search" and parsed[1].strip():
                        rows.append((parsed[1], gold))
        out[name] = rows
    return out


def recall(search, queries: list[str], golds: list[set[str]]) -> dict[str, float]:
    hits = search.retrieve(queries, 5)
    out = {}
    for k in (1, 3, 5):
        titles = [{p.title for p, _ in h[:k]} for h in hits]
        out[f"any@{k}"] = float(np.mean([bool(t & g) for t, g in zip(titles, golds)]))
        out[f"both@{k}"] = float(np.mean([g <= t for t, g in zip(titles, golds)]))
    return out


def one(name: str, args: argparse.Namespace) -> dict:
    """Everything about one retriever, in this (fresh) process."""
    import torch

    from fireact.data.paths import resolve_data_dir
    from fireact.data.tasks import wiki_rows
    from fireact.data.trajectory import question_key
    from fireact.data.wiki_questions import read_wiki_questions, wiki_dir
    from fireact.tools.wiki import WikiSearch

    torch.set_num_threads(args.threads)
    root = resolve_data_dir(args.data_dir)
    corpus = wiki_dir(root) / "paragraphs.jsonl"
    start = time.perf_counter()
    search = WikiSearch(corpus, name)
    ready = time.perf_counter() - start
    result = {"retriever": name, "build_or_load_s": round(ready, 2), "build_s": search.retriever.meta["build_seconds"],
              "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}  # fmt: skip
    for split in ("wiki-eval", "wiki-val"):
        split_rows = wiki_rows(root, split)
        qs = [r["question"] for r in split_rows]
        result[split] = {"n": len(qs), **recall(search, qs, [set(r["supporting_titles"]) for r in split_rows])}
        if split == "wiki-eval":
            lat = []
            for q in qs:
                t = time.perf_counter()
                search(q)
                lat.append(time.perf_counter() - t)
            result["p50_ms"], result["p99_ms"] = (round(1000 * float(np.percentile(lat, p)), 2) for p in (50, 99))
            t = time.perf_counter()
            search.retrieve(qs, 5)
            result["batched_ms_per_query"] = round(1000 * (time.perf_counter() - t) / len(qs), 2)
    rows = read_wiki_questions(wiki_dir(root) / "questions.jsonl")
    golds = {question_key(r["question"]): set(r["supporting_titles"]) for r in rows}
    for source, pairs in fireact_queries(root, golds).items():
        if pairs:
            result[source] = {"n": len(pairs), **recall(search, [q for q, _ in pairs], [g for _, g in pairs])}
    for folder in [p.folder for p in getattr(search.retriever, "parts", [search.retriever])]:
        mb = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
        result["disk_mb"] = round(result.get("disk_mb", 0) + mb, 1)
    result["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def decode_step_ms(threads: int, rows: int = 16, context: int = 300, steps: int = 20) -> float:
    """One batched decode step of the default model: `rows` sequences with `context` tokens of KV."""
    import torch
    from transformers import AutoModelForCausalLM

    from fireact.lm.models import DEFAULT_MODEL, resolve_model

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(DEFAULT_MODEL), dtype=torch.float32).eval()
    ids = torch.randint(100, 1000, (rows, context))
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True)
        cache, nxt = out.past_key_values, ids[:, -1:]
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--retrievers", nargs="+", default=["bm25", "dense", "hybrid"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=Path("runs/bench/retrieval.json"))
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args)))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:  # fresh indexes: build times are real builds
        env = {**os.environ, "FIREACT_INDEX_DIR": tmp}
        for name in args.retrievers:
            for phase in ("build", "load"):
                cmd = [sys.executable, __file__, "--one", name, "--threads", str(args.threads)]
                cmd += ["--data-dir", args.data_dir] if args.data_dir else []
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(f"{name} ({phase}) failed:\n{proc.stderr[-3000:]}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{name} {phase}: {json.dumps(row)}", flush=True)
                results.append({**row, "phase": phase})
    step = decode_step_ms(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"decode_step_ms": step, "load": os.getloadavg(), "runs": results}, indent=1))
    print(f"16-row decode step of SmolLM2-135M: {step:.1f} ms")
    for r in results:
        if r["phase"] == "load":
            ev = r["wiki-eval"]
            print(f"retrieval: {r['retriever']} any@5={ev['any@5']:.3f} both@5={ev['both@5']:.3f} "
                  f"p50_ms={r['p50_ms']} ratio={step / r['p50_ms']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
