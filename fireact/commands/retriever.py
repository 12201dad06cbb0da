"""Retrieval: build a corpus's index once, or serve it behind Search-R1's POST /retrieve API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fireact.commands.common import COUNT, PORT, add_data_dir, data_dir
from fireact.data.wiki_questions import default_corpus
from fireact.errors import FireactError
from fireact.serve.http_app import add_server_security, check_bind, resolve_api_key, serve_until_stopped
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
            add_server_security(s)
            s.add_argument("--port", type=PORT, default=8001)
            s.add_argument("--max-queue", type=COUNT, default=64, help="requests waiting; beyond, HTTP 503")
            s.add_argument("--max-batch", type=COUNT, default=64, help="queries searched together")


def run(args: argparse.Namespace) -> int:
    api_key = resolve_api_key(getattr(args, "api_key", None))
    if args.action == "serve":
        check_bind(args.host, api_key, args.allow_unauthenticated)  # before the index builds
    corpus = args.corpus or default_corpus(data_dir(args))
    search = WikiSearch(corpus, args.retriever, progress_every=100_000)
    meta = search.retriever.meta
    print(f"{args.retriever} index of {corpus}: {meta['passages']} passages (built in {meta['build_seconds']} s)",
          file=sys.stderr, flush=True)  # fmt: skip
    if args.action == "index":
        return 0
    try:
        server = make_retrieval_server(search, args.host, args.port, args.max_queue, args.max_batch, api_key)
    except OSError as e:
        raise FireactError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    serve_until_stopped(server, str(corpus), "/retrieve")
    return 0
