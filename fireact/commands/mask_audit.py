"""Show which tokens of rendered training examples carry the loss (trained text highlighted).

It runs the DataModule's own encode path (`fireact.data.encoding.encode`: the same renderer, tokenizer
call, mask and cutoff), so what it shows is exactly what training trains on.

With --json: one object per line, {"index", "trained", "masked", "n_tokens", "n_trained"}, where
trained / masked are the maximal runs of decoded text that are / are not in the loss.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fireact.commands.common import COUNT, add_env, adopt_env
from fireact.data.encoding import encode
from fireact.data.fireact_format import read_any
from fireact.data.prompt_style import PromptStyle
from fireact.errors import FireactError
from fireact.lm.models import load_tokenizer


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="trajectory JSONL or FireAct release file")
    p.add_argument("--model", default="smollm2-135m", help="model name or path whose tokenizer is audited")
    p.add_argument("--format", choices=["chat", "alpaca"], default="chat")
    p.add_argument("--protocol", choices=["react", "tool-calls"], default="react", help="how a step calls a tool")
    p.add_argument("--n", type=COUNT, default=3, help="number of examples (from the start of the file)")
    p.add_argument(
        "--cutoff", type=COUNT, default=512, help="tokens per example, as the DataModule's cutoff (its default: 512)"
    )
    p.add_argument(
        "--no-mask-observations",
        dest="mask_observations",
        action="store_false",
        help="as the DataModule's mask_observations: false (observations trained too, as FireAct's released runs)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per example instead of highlighted text")
    add_env(p)


def runs(input_ids: list[int], mask: list[bool], tokenizer) -> list[tuple[bool, str]]:
    """Maximal runs of tokens with the same trained/masked state, decoded."""
    out: list[tuple[bool, list[int]]] = []
    for tok, trained in zip(input_ids, mask):
        if out and out[-1][0] == trained:
            out[-1][1].append(tok)
        else:
            out.append((trained, [tok]))
    return [(trained, tokenizer.decode(ids)) for trained, ids in out]


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.text import Text

    if args.n < 1:
        raise FireactError("--n must be at least 1")
    trajectories = adopt_env([t for t in read_any(args.data) if t.turns][: args.n], args)
    if not trajectories:
        raise FireactError(f"{args.data}: no trajectories with turns")
    tokenizer = load_tokenizer(args.model)
    encoded = encode(
        trajectories, tokenizer, PromptStyle(args.format, protocol=args.protocol), args.cutoff, args.mask_observations
    )
    console = Console(highlight=False)
    for i, enc in enumerate(encoded):
        parts = runs(enc.input_ids.tolist(), enc.trained.tolist(), tokenizer)
        n_trained = int(enc.trained.sum())
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
        cut = f", cut from {len(enc) + enc.cut} (truncation: drop leaves it out)" if enc.truncated else ""
        console.rule(f"example {i}: {n_trained}/{len(enc.input_ids)} tokens trained ({args.format}{cut})")
        console.print(text)
    if not args.json:
        masked = "prompt, template, observations" if args.mask_observations else "question and prompt"
        console.print(f"[bold black on green]trained[/] = in the loss; dim = masked ({masked})")
    return 0
