"""Two environments measured: company-db (tools from the mcp-server-sqlite MCP server) and wikienv
(ReAct's Wikipedia actions) against FireAct's search in the same wiki world.

Steps, in order, each a public command in a subprocess; the command, wall and CPU time and versions go
to runs/envs/steps.json and a finished step (its output exists) is skipped, so a rerun resumes:
  cdb-teacher   the scripted teacher over the real MCP server, on company-db's train split
  cdb-base      SmolLM2-135M-Instruct zero-shot on the 77 test questions
  cdb-sft       LoRA SFT on the teacher's trajectories (configs/envs/company_db_sft.yaml), then export
  cdb-sft-eval  the SFT agent on the same 77 test questions
  wiki-teachers both gold-path teachers on the same 500 wiki-train questions
  wenv-sft / wsearch-sft     LoRA SFT of each (configs/envs/wikienv_sft.yaml, wiki_search_sft.yaml)
  wenv-eval / wsearch-eval   each on the first 200 wiki-eval questions (max 8 turns)

    python experiments/environments.py [--only cdb-teacher ...]
    python experiments/environments.py --report     # the tables of docs/results/environments.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from steps import cli, print_costs

from fireact.data.evaluation import bootstrap_gain, episode_stats, mcnemar
from fireact.data.trajectory import read_trajectories

OUT = Path("runs/envs")
FIREACT = [sys.executable, "-m", "fireact"]
CDB_TEST = ["--env", "company-db", "--env-args", '{"split": "test"}', "--max-turns", "8", "--batch-size", "40"]
WIKI_EVAL = ["--n", "200", "--max-turns", "8", "--batch-size", "40", "--json"]


def _sft(name: str, config: str, run_dir: Path) -> dict[str, tuple[list[str], Path]]:
    ckpt, adapter = run_dir / "checkpoints" / "last.ckpt", run_dir / "adapter"
    return {
        f"{name}-train": ([sys.executable, "-m", "fireact.train", "fit", "--config", config], ckpt),
        f"{name}-export": (
            [*FIREACT, "export", "--ckpt", str(ckpt), "--out", str(adapter)],
            adapter / "adapter_config.json",
        ),
    }


def steps() -> dict[str, tuple[list[str], Path]]:
    """name -> (command, the file that exists once it is done)."""
    teacher = OUT / "company_db_teacher.jsonl"
    out = {
        "cdb-teacher": ([sys.executable, "-m", "fireact.env.company_db", "--split", "train", "--out", str(teacher)], teacher),
        "cdb-base": ([*FIREACT, "eval", *CDB_TEST, "--json", "--out", str(OUT / "cdb_base_eval.jsonl")],
                     OUT / "cdb_base_eval.jsonl"),
        **_sft("cdb-sft", "configs/envs/company_db_sft.yaml", OUT / "company_db"),
        "cdb-sft-eval": ([*FIREACT, "eval", *CDB_TEST, "--adapter", str(OUT / "company_db/adapter"), "--json", "--out",
                          str(OUT / "cdb_sft_eval.jsonl")], OUT / "cdb_sft_eval.jsonl"),
    }  # fmt: skip
    lookup, search = OUT / "wikienv_teacher.jsonl", OUT / "wiki_search_teacher.jsonl"
    out["wiki-teachers"] = ([sys.executable, "experiments/wiki_teachers.py", "--n", "500", "--lookup-out", str(lookup),
                             "--search-out", str(search)], search)  # fmt: skip
    out |= _sft("wenv-sft", "configs/envs/wikienv_sft.yaml", OUT / "wikienv")
    out |= _sft("wsearch-sft", "configs/envs/wiki_search_sft.yaml", OUT / "wiki_search")
    out["wenv-eval"] = ([*FIREACT, "eval", "--env", "wikienv", "--env-args", '{"split": "wiki-eval"}', *WIKI_EVAL,
                         "--adapter", str(OUT / "wikienv/adapter"), "--out", str(OUT / "wenv_eval.jsonl")],
                        OUT / "wenv_eval.jsonl")  # fmt: skip
    out["wsearch-eval"] = ([*FIREACT, "eval", "--split", "wiki-eval", "--tool", "wiki", *WIKI_EVAL, "--adapter",
                            str(OUT / "wiki_search/adapter"), "--out", str(OUT / "wsearch_eval.jsonl")],
                           OUT / "wsearch_eval.jsonl")  # fmt: skip
    return out


def report() -> None:
    """Each eval's row (success, format errors, calls, searches, lookups, gold seen and right then), the
    paired tests of each SFT agent against its reference, and every step's wall and CPU time."""
    rows = {"cdb-base": "cdb_base_eval", "cdb-sft-eval": "cdb_sft_eval", "wsearch-eval": "wsearch_eval",
            "wenv-eval": "wenv_eval"}  # fmt: skip
    runs = {k: read_trajectories(OUT / f"{v}.jsonl") for k, v in rows.items() if (OUT / f"{v}.jsonl").is_file()}
    print("| run | n | EM | reward | F1 | format errors | calls / episode | searches | lookups | gold seen (right) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, trajs in runs.items():
        st, n = episode_stats(trajs), max(len(trajs), 1)
        reward = sum(t.score for t in trajs) / n
        calls = sum(t.num_actions for t in trajs) / n
        lookups = sum(x.tool == "lookup" for t in trajs for x in t.turns) / n
        print(f"| {name} | {st['n']} | {100 * st['em']:.1f} | {100 * reward:.1f} | {100 * st['f1']:.1f} | "
              f"{100 * st['format_errors']:.1f}% | {calls:.2f} | {st['searches']:.2f} | {lookups:.2f} | "
              f"{st['gold_seen']} ({st['right_when_seen']}) |")  # fmt: skip
    for a, b in (("cdb-base", "cdb-sft-eval"), ("wsearch-eval", "wenv-eval")):
        if a in runs and b in runs:
            m, g = mcnemar(runs[a], runs[b]), bootstrap_gain(runs[a], runs[b])
            print(f"{b} vs {a}: +{m['only_second']} / -{m['only_first']} on {m['questions']} questions, McNemar p = "
                  f"{m['p_value']:.3g}; gain {100 * g['gain']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]")  # fmt: skip
    print_costs(OUT / "steps.json")


if __name__ == "__main__":
    cli(__doc__, steps(), report, OUT / "steps.json")
