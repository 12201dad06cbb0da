"""A fine-tune through the OpenAI fine-tuning API (the paper's strongest agent was GPT-3.5 trained this
way): upload, create, follow, cancel, through the official `openai` client, whose retries handle
429/5xx and dropped connections.

A run is paid for once. Its record (a JSON file keyed by the hash of the uploaded bytes and the job's
settings) is written after every step, so the same command run again re-attaches to the file and job
it already created; the job also carries that key in its metadata, so a record lost between creating
the job and writing it is found again by listing jobs. The key comes only from the environment and is
never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fireact.data.paths import read_text, write_lines_atomic
from fireact.errors import FireactError
from fireact.secrets import redact

TERMINAL = ("succeeded", "failed", "cancelled")
METADATA_KEY = "fireact_run"


@dataclass
class FinetuneRecord:
    key: str
    file: str
    model: str
    epochs: int | None = None  # None: the API's choice ("auto")
    suffix: str | None = None
    seed: int | None = None
    validation_file: str | None = None
    estimate: dict[str, Any] = field(default_factory=dict)
    file_id: str | None = None
    validation_file_id: str | None = None
    job_id: str | None = None
    status: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: str | None = None
    eval_command: str | None = None

    def save(self, path: Path) -> None:
        write_lines_atomic(path, [json.dumps(asdict(self), indent=1)])

    @classmethod
    def load(cls, path: Path) -> FinetuneRecord:
        try:
            return cls(**json.loads(read_text(path, "fine-tune record")))
        except (json.JSONDecodeError, TypeError) as e:
            raise FireactError(f"{path}: not a fireact fine-tune record ({e}); move it away to start over") from None


def run_key(file: Path, validation_file: Path | None, settings: dict[str, Any]) -> str:
    """The run's identity: the bytes that are uploaded and the job's settings."""
    h = hashlib.sha256()
    for path in (file, validation_file):
        h.update(path.read_bytes() if path else b"")
        h.update(b"\0")
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:20]


class HostedFinetune:
    def __init__(self, base_url: str | None = None, max_retries: int = 5, timeout: float = 120.0):
        from openai import OpenAI

        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise FireactError("set OPENAI_API_KEY in the environment (it is never read from files or flags)")
        self._key = key
        self.client = OpenAI(api_key=key, base_url=self.base_url, max_retries=max_retries, timeout=timeout)

    def _call(self, what: str, fn, *args, **kwargs):
        """One API call; its failure as a FireactError saying what failed, where, and whether to retry."""
        import openai

        try:
            return fn(*args, **kwargs)
        except openai.AuthenticationError:
            raise FireactError(f"{what}: {self.base_url} rejected OPENAI_API_KEY (401)") from None
        except openai.APIStatusError as e:
            again = "retrying later may help" if e.status_code in (408, 409, 429) or e.status_code >= 500 else ""
            msg = redact(str(e.message if hasattr(e, "message") else e), (self._key,))
            raise FireactError(
                f"{what}: HTTP {e.status_code} from {self.base_url}: {msg}{'; ' + again if again else ''}"
            ) from None
        except openai.APIConnectionError as e:  # includes timeouts; the client already retried
            raise FireactError(
                f"{what}: cannot reach {self.base_url} ({type(e).__name__}) after retries; re-run the same command to resume"
            ) from None
        except openai.OpenAIError as e:
            raise FireactError(f"{what}: {redact(str(e), (self._key,))}") from None

    def start_or_attach(
        self, rec: FinetuneRecord, record_path: Path, new_job: bool, say: Callable[[str], None]
    ) -> None:
        """The resumable steps before a job runs, each saved to the record the moment it is done, so an
        interrupted run re-attaches instead of paying twice: upload the files, then create the job (or
        find the one a killed run created before it could record it)."""
        if rec.file_id is None:
            rec.file_id = self.upload(Path(rec.file))
            rec.save(record_path)
            say(f"uploaded {rec.file} as {rec.file_id}")
        if rec.validation_file and rec.validation_file_id is None:
            rec.validation_file_id = self.upload(Path(rec.validation_file))
            rec.save(record_path)
        if rec.job_id is None:
            job = None if new_job else self.find_job(rec.key)
            job = job or self.create(rec)
            rec.job_id, rec.status = job.id, job.status
            rec.save(record_path)
            say(f"fine-tuning job {job.id} created ({rec.model}); record: {record_path}")
        else:
            say(f"re-attached to job {rec.job_id} (record: {record_path})")

    def upload(self, path: Path) -> str:
        with path.open("rb") as f:
            return self._call(f"uploading {path}", self.client.files.create, file=f, purpose="fine-tune").id

    def find_job(self, key: str) -> Any | None:
        """A job this run created earlier (by the key in its metadata) that did not fail or get cancelled."""
        page = self._call("listing fine-tuning jobs", self.client.fine_tuning.jobs.list, metadata={METADATA_KEY: key})
        for job in page.data:
            if (job.metadata or {}).get(METADATA_KEY) == key and job.status not in ("failed", "cancelled"):
                return job
        return None

    def create(self, rec: FinetuneRecord) -> Any:
        supervised: dict[str, Any] = {"hyperparameters": {"n_epochs": rec.epochs}} if rec.epochs else {}
        kwargs: dict[str, Any] = {
            "model": rec.model,
            "training_file": rec.file_id,
            "method": {"type": "supervised", "supervised": supervised},
            "metadata": {METADATA_KEY: rec.key},
        }
        kwargs |= {k: v for k, v in (("suffix", rec.suffix), ("seed", rec.seed)) if v is not None}
        if rec.validation_file_id:
            kwargs["validation_file"] = rec.validation_file_id
        return self._call("creating the fine-tuning job", self.client.fine_tuning.jobs.create, **kwargs)

    def retrieve(self, job_id: str) -> Any:
        return self._call(f"reading job {job_id}", self.client.fine_tuning.jobs.retrieve, job_id)

    def cancel(self, job_id: str) -> Any:
        return self._call(f"cancelling job {job_id}", self.client.fine_tuning.jobs.cancel, job_id)

    def follow(
        self, job_id: str, poll_seconds: float, stop: threading.Event | None = None
    ) -> Iterator[tuple[Any, list[Any]]]:
        """(job, its new events, oldest first) at every poll, until the job ends or `stop` is set."""
        stop = stop or threading.Event()
        seen: set[str] = set()
        while True:
            job = self.retrieve(job_id)
            page = self._call(
                f"reading job {job_id}'s events", self.client.fine_tuning.jobs.list_events, job_id, limit=100
            )
            new = [e for e in reversed(page.data) if e.id not in seen]  # the API lists newest first
            seen.update(e.id for e in new)
            yield job, new
            if job.status in TERMINAL or stop.wait(poll_seconds):
                return
