"""The two gold-path teachers on the same wiki-train questions: ReAct's Wikipedia actions (search a
page's first sentence, lookup[keyword] for the next) and FireAct's search (the best passage whole).
Only questions both teachers can play are kept, the first `--n` of them in wiki-train's order, so the
two SFT agents learn from the same questions and differ only in how they read.

    python experiments/wiki_teachers.py --n 500 --lookup-out L.jsonl --search-out S.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fireact.data.paths import resolve_data_dir
from fireact.data.tasks import TASKS
from fireact.data.trajectory import write_trajectories
from fireact.data.wiki_questions import default_corpus
from fireact.env.builtin import wikienv
from fireact.rollout.gold_path import gold_path_episode, gold_path_lookup_episode, supporting_titles
from fireact.tools.wiki import WikiSearch
from fireact.tools.wiki_pages import WikiPages


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--split", default="wiki-train")
    p.add_argument("--lookup-out", type=Path, required=True)
    p.add_argument("--search-out", type=Path, required=True)
    args = p.parse_args()
    started = time.monotonic()
    root = resolve_data_dir(None)
    titles = supporting_titles(root, args.split)
    pages, search = WikiPages(default_corpus(root)), WikiSearch(default_corpus(root))
    schemas = wikienv(root, args.split).schemas()  # the tools the lookup agent is shown
    lookup_trajs, search_trajs, tried = [], [], 0
    for e in TASKS["hotpotqa"].load(root, args.split):
        if len(lookup_trajs) >= args.n:
            break
        tried += 1
        with_lookup = gold_path_lookup_episode(e, "wikienv", titles[e.id], pages)
        searched = gold_path_episode(e, "hotpotqa", titles[e.id], search)
        if with_lookup is not None and searched is not None:
            with_lookup.tools = schemas
            lookup_trajs.append(with_lookup)
            search_trajs.append(searched)
    write_trajectories(args.lookup_out, lookup_trajs)
    write_trajectories(args.search_out, search_trajs)
    lookups = sum(t.tool == "lookup" for x in lookup_trajs for t in x.turns)
    print(json.dumps({"questions_tried": tried, "kept": len(lookup_trajs), "lookups": lookups,
                      "with_a_lookup": sum(any(t.tool == "lookup" for t in x.turns) for x in lookup_trajs),
                      "seconds": round(time.monotonic() - started, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
