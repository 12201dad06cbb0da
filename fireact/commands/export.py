"""Export a training checkpoint as a Hugging Face folder (LoRA adapter or merged/full model), optionally pushed to the Hub."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="Lightning .ckpt file or DeepSpeed checkpoint directory")
    parser.add_argument("--out", required=True, help="output folder (created; existing files are overwritten)")
    parser.add_argument("--merge", action="store_true", help="LoRA: merge the adapter into the base weights")
    parser.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="upload the folder to this Hub repo (token: $HF_TOKEN)"
    )
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument("--license", help="model card license (default: from the base model family, else 'other')")


def run(args: argparse.Namespace) -> int:
    from fireact.modules.export import export, push  # lazy: torch/Lightning, not for --help

    out = export(Path(args.ckpt), Path(args.out), merge=args.merge, license_id=args.license)
    if args.push_to_hub:
        print(f"pushed to {push(out, args.push_to_hub, args.private)}")
    return 0
