"""Show which tokens of rendered training examples carry the loss (trained text highlighted).

With --json: one object per line, {"index", "trained", "masked", "n_tokens", "n_trained"}, where
trained / masked are the maximal runs of decoded text that are / are not in the loss.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="trajectory JSONL or FireAct release file")
    p.add_argument("--model", default="smollm2-135m", help="model name or path whose tokenizer is audited")
    p.add_argument("--format", choices=["chat", "alpaca"], default="chat")
    p.add_argument("--n", type=int, default=3, help="number of examples (from the start of the file)")
    p.add_argument("--cutoff", type=int, default=None, help="truncate at this many tokens, as training would")
    p.add_argument("--json", action="store_true", help="one JSON object per example instead of highlighted text")


def runs(input_ids: list[int], labels: list[int], tokenizer) -> list[tuple[bool, str]]:
    """Maximal runs of tokens with the same trained/masked state, decoded."""
    out: list[tuple[bool, list[int]]] = []
    for tok, lab in zip(input_ids, labels):
        trained = lab != -100
        if out and out[-1][0] == trained:
            out[-1][1].append(tok)
        else:
            out.append((trained, [tok]))
    return [(trained, tokenizer.decode(ids)) for trained, ids in out]


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.text import Text
    from transformers import AutoTokenizer

    from fireact.agent.models import resolve_model
    from fireact.data.encoding import encode
    from fireact.data.errors import FireactError
    from fireact.data.fireact_format import read_any

    if args.n < 1:
        raise FireactError("--n must be at least 1")
    trajectories = [t for t in read_any(args.data) if t.turns][: args.n]
    if not trajectories:
        raise FireactError(f"{args.data}: no trajectories with turns")
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model))
    except (OSError, ValueError) as e:
        raise FireactError(f"cannot load the tokenizer of {args.model!r}: {e}") from None
    encoded = encode(trajectories, tokenizer, args.format, cutoff=args.cutoff)
    console = Console(highlight=False)
    for i, enc in enumerate(encoded):
        parts = runs(enc.input_ids, enc.labels, tokenizer)
        n_trained = sum(1 for x in enc.labels if x != -100)
        if args.json:
            row = {
                "index": i,
                "trained": [s for t, s in parts if t],
                "masked": [s for t, s in parts if not t],
                "n_tokens": len(enc.input_ids),
                "n_trained": n_trained,
            }
            print(json.dumps(row, ensure_ascii=False))
            continue
        text = Text()
        for trained, s in parts:
            text.append(s, style="bold black on green" if trained else "dim")
        cut = f", truncated from {enc.length}" if enc.truncated else ""
        console.rule(f"example {i}: {n_trained}/{len(enc.input_ids)} tokens trained ({args.format}{cut})")
        console.print(text)
    if not args.json:
        console.print("[bold black on green]trained[/] = in the loss; dim = masked (prompt, template, observations)")
    return 0
