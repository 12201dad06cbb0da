"""Fine-tune an OpenAI model on an exported chat training set (`fireact export-data --format openai`).

The file is checked against the API's rules (file:line of the first problem) and its tokens and cost
estimated before anything is uploaded; `--max-cost-usd` refuses to start above a budget and
`--dry-run` stops after the estimate. Then: upload, create the job, follow its events and metrics.
Interrupting only detaches: the same command re-attaches to the same upload and job (its record is
keyed by the file's bytes and the settings), `--cancel` cancels it, `--new-job` starts over (billed
again). The end prints the fine-tuned model id and the `fireact eval` command for it. OPENAI_API_KEY
(and OPENAI_BASE_URL for a compatible server) come from the environment.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import threading
from pathlib import Path

from fireact.commands.common import COUNT, NON_NEGATIVE, POSITIVE, USD
from fireact.data.openai_chat_file import ChatFile, check_chat_file, price_per_million
from fireact.errors import FireactError
from fireact.hosted.finetune import (
    TERMINAL,
    FinetuneRecord,
    HostedFinetune,
    run_key,
)

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--file", required=True, type=Path, help="chat fine-tuning JSONL (fireact export-data --format openai)"
    )
    p.add_argument("--validation-file", type=Path, help="optional held-out chat JSONL (export-data --val-out)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"base model to fine-tune (default {DEFAULT_MODEL})")
    p.add_argument("--epochs", type=COUNT, help="training epochs (default: the API's auto choice)")
    p.add_argument("--suffix", help="up to 64 characters added to the fine-tuned model's name")
    p.add_argument("--seed", type=NON_NEGATIVE, help="the job's seed, for a reproducible fine-tune")
    p.add_argument("--max-cost-usd", type=USD, help="refuse to start when the estimated cost is above this")
    p.add_argument(
        "--price-per-million", type=POSITIVE, help="USD per 1M training tokens (default: the published price)"
    )
    p.add_argument("--dry-run", action="store_true", help="check the file and estimate the cost; upload nothing")
    p.add_argument("--cancel", action="store_true", help="cancel this run's job")
    p.add_argument("--new-job", action="store_true", help="start a new job even if this run already has one")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/openai-finetune"), help="where run records are kept")
    p.add_argument("--poll-seconds", type=POSITIVE, default=15.0, help="seconds between status polls")
    p.add_argument("--eval-task", default="hotpotqa", help="task of the printed `fireact eval` command")


def estimate(chat: ChatFile, args: argparse.Namespace) -> dict:
    epochs = chat.epochs(args.epochs)
    billed = chat.billed_tokens(args.model, args.epochs)
    price = price_per_million(args.model, args.price_per_million)
    return {
        "examples": chat.examples,
        "tokens": sum(chat.tokens),
        "assistant_tokens": chat.assistant_tokens,
        "tokens_exact": chat.exact_tokens,
        "epochs": epochs,
        "billed_tokens": billed,
        "usd": None if price is None else round(billed * price / 1e6, 4),
    }


def describe(est: dict, model: str) -> str:
    approx = "" if est["tokens_exact"] else "~"
    cost = "unknown price (pass --price-per-million)" if est["usd"] is None else f"~${est['usd']:.2f}"
    return (
        f"{est['examples']} examples, {approx}{est['tokens']:,} tokens ({approx}{est['assistant_tokens']:,} trained "
        f"assistant tokens) x {est['epochs']} epochs = {approx}{est['billed_tokens']:,} billed tokens on {model}: {cost}"
        + ("" if est["tokens_exact"] else " (tokens estimated at 4 characters each: install tiktoken to count them)")
    )


def eval_command(model_id: str, task: str) -> str:
    out = f"runs/eval_{model_id.replace(':', '_')}.jsonl"
    return f"fireact eval --lm {shlex.quote('openai:' + model_id)} --task {task} --split dev --n 500 --out {out}"


def checked_estimate(args: argparse.Namespace, console) -> dict:
    """The files checked against the API's rules and the cost estimated (and held to --max-cost-usd)."""
    chat = check_chat_file(args.file, args.model)
    if args.validation_file:
        check_chat_file(args.validation_file, args.model)
    est = estimate(chat, args)
    console.print(f"{args.file}: {describe(est, args.model)}")
    if args.max_cost_usd is not None:
        if est["usd"] is None:
            raise FireactError(f"--max-cost-usd: no known price for {args.model}; pass --price-per-million")
        if est["usd"] > args.max_cost_usd:
            raise FireactError(
                f"estimated ${est['usd']:.2f} is above --max-cost-usd {args.max_cost_usd:.2f}: not started"
            )
    return est


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    est = checked_estimate(args, console)
    if args.dry_run:
        return 0

    settings = {"model": args.model, "epochs": args.epochs, "suffix": args.suffix, "seed": args.seed}
    key = run_key(args.file, args.validation_file, settings)
    record_path = args.runs_dir / f"{key}.json"
    rec = FinetuneRecord.load(record_path) if record_path.is_file() else None
    api = HostedFinetune()
    if args.cancel:
        if rec is None or rec.job_id is None:
            raise FireactError(
                f"no job to cancel: this run ({args.file}, {args.model}) has no record in {args.runs_dir}"
            )
        job = api.cancel(rec.job_id)
        rec.status = job.status
        rec.save(record_path)
        console.print(f"job {rec.job_id}: {job.status}")
        return 0
    if rec is None or args.new_job and rec.job_id:
        rec = FinetuneRecord(
            key, str(args.file), args.model, args.epochs, args.suffix, args.seed,
            str(args.validation_file) if args.validation_file else None, est,
            file_id=rec.file_id if rec else None, validation_file_id=rec.validation_file_id if rec else None,
        )  # fmt: skip
    elif rec.status in ("failed", "cancelled"):
        raise FireactError(
            f"this run's job {rec.job_id} {rec.status}{': ' + rec.error if rec.error else ''}; "
            f"add --new-job to start another (billed again), record: {record_path}"
        )

    api.start_or_attach(rec, record_path, args.new_job, console.print)
    job, stop = follow_until_detached(api, rec, record_path, args.poll_seconds, console)
    if job is None or (stop.is_set() and job.status not in TERMINAL):
        console.print(
            f"detached from job {rec.job_id}: it keeps running (and billing) on the server. Run the same command "
            "to re-attach, or add --cancel to cancel it."
        )
        return 130
    if job.status != "succeeded":
        raise FireactError(f"job {job.id} {job.status}{': ' + rec.error if rec.error else ''} (record: {record_path})")
    rec.fine_tuned_model = job.fine_tuned_model
    rec.eval_command = eval_command(job.fine_tuned_model, args.eval_task)
    rec.save(record_path)
    console.print(f"fine-tuned model: {job.fine_tuned_model}\nevaluate it:\n  {rec.eval_command}")
    print(job.fine_tuned_model)
    return 0


def follow_until_detached(api, rec, record_path: Path, poll_seconds: float, console):
    """(the job when following ended, or None; the event Ctrl-C set). The first Ctrl-C detaches
    between two polls, never in the middle of a request; a second does not wait for the request."""
    stop = threading.Event()

    def on_sigint(*_: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return follow(api, rec, record_path, poll_seconds, console, stop), stop
    except KeyboardInterrupt:
        return None, stop
    finally:
        signal.signal(signal.SIGINT, previous)


def follow(api, rec, record_path: Path, poll_seconds: float, console, stop: threading.Event):
    """Poll the job until it ends: its events printed, its metrics steps as a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{rec.job_id}: starting", total=None)
        metrics: dict = {}
        for job, events in api.follow(rec.job_id, poll_seconds, stop):
            for e in events:
                if e.type == "metrics" and e.data:
                    metrics = e.data
                else:
                    progress.console.print(f"[{e.level}] {e.message}")
            if metrics.get("total_steps"):
                progress.update(task, total=metrics["total_steps"], completed=metrics.get("step", 0))
            loss = f" loss {metrics['train_loss']:.3f}" if "train_loss" in metrics else ""
            progress.update(task, description=f"{rec.job_id}: {job.status}{loss}")
            if job.status != rec.status or job.trained_tokens != rec.trained_tokens:
                rec.status, rec.trained_tokens = job.status, job.trained_tokens
                rec.error = job.error.message if job.error and job.error.message else None
                rec.save(record_path)
    return job
