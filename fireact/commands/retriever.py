"""Retrieval: build a corpus's index once, or serve it behind Search-R1's POST /retrieve API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fireact.commands.common import COUNT, PORT, add_data_dir, data_dir
from fireact.data.wiki_questions import default_corpus
from fireact.errors import FireactError
from fireact.serve.json_http import serve_until_stopped
from fireact.serve.retriever import make_retrieval_server
from fireact.tools.retrievers import RETRIEVERS
from fireact.tools.wiki import WikiSearch


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    for name, what in (("index", "build (or check) the corpus's cached index"), ("serve", "serve POST /retrieve")):
        s = sub.add_parser(name, help=what)
        s.add_argument("--corpus", type=Path, help="passage JSONL (default: hotpotqa_wiki/paragraphs.jsonl)")
        s.add_argument("--retriever", default="bm25", choices=RETRIEVERS)
        add_data_dir(s)
        if name == "serve":
            s.add_argument("--host", default="127.0.0.1")
            s.add_argument("--port", type=PORT, default=8001)
            s.add_argument("--max-queue", type=COUNT, default=64, help="requests waiting; beyond, HTTP 503")
            s.add_argument("--max-batch", type=COUNT, default=64, help="queries searched together")


def run(args: argparse.Namespace) -> int:
    corpus = args.corpus or default_corpus(data_dir(args))
    search = WikiSearch(corpus, args.retriever, progress_every=100_000)
    meta = search.retriever.meta
    print(f"{args.retriever} index of {corpus}: {meta['passages']} passages (built in {meta['build_seconds']} s)",
          file=sys.stderr, flush=True)  # fmt: skip
    if args.action == "index":
        return 0
    if args.max_queue < 1 or args.max_batch < 1:
        raise FireactError("--max-queue and --max-batch must be >= 1")
    try:
        server = make_retrieval_server(search, args.host, args.port, args.max_queue, args.max_batch)
    except OSError as e:
        raise FireactError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    serve_until_stopped(server, str(corpus), "/retrieve")
    return 0
