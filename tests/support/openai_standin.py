"""A local stand-in for the OpenAI files and fine-tuning endpoints the official client calls (upload,
create, retrieve, list, list events, cancel), since the real service cannot be reached here.

A job advances one stage per retrieve (validating_files, queued, running through its steps with
metrics events, succeeded), so a test follows a whole job in a few polls. Faults are injected per
request from `faults` (see faults.py); `fail_jobs` makes jobs fail the way the API reports a bad training file. Requests without
the expected bearer key get 401.
"""

from __future__ import annotations

import email
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlparse

from faults import LocalServer, replaces_answer, send


class OpenAIStandIn(LocalServer):
    def __init__(self, key: str, steps_per_poll: int = 4) -> None:
        self.key, self.steps_per_poll = key, steps_per_poll
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.faults: list[int | str] = []
        self.fail_jobs = False
        self.requests: list[str] = []  # "METHOD /path" of every request, faulted ones included
        self.lock = threading.Lock()
        super().__init__(self._handler(), "/v1")

    def count(self, request: str) -> int:
        return sum(r == request for r in self.requests)

    # ------------------------------------------------------------------ the API
    def _event(self, job_id: str, message: str, type_: str = "message", data: dict | None = None) -> None:
        events = self.events[job_id]
        events.append({
            "id": f"ftevent-{job_id}-{len(events)}", "object": "fine_tuning.job.event", "created_at": int(time.time()),
            "level": "error" if "failed" in message else "info", "message": message, "type": type_, "data": data or {},
        })  # fmt: skip

    def _advance(self, job: dict) -> None:
        status = job["status"]
        if status == "validating_files":
            job["status"] = "failed" if self.fail_jobs else "queued"
            if self.fail_jobs:
                job["error"] = {"code": "invalid_training_file", "param": "training_file",
                                "message": "The job failed due to an invalid training file."}  # fmt: skip
                self._event(job["id"], "Fine-tuning job failed: invalid training file")
            else:
                self._event(job["id"], "Files validated, moving job to queued state")
        elif status == "queued":
            job["status"] = "running"
            self._event(job["id"], "Fine-tuning job started")
        elif status == "running":
            total = job["_total_steps"]
            for _ in range(self.steps_per_poll):
                if job["_step"] >= total:
                    break
                job["_step"] += 1
                loss = 2.0 / job["_step"]
                self._event(job["id"], f"Step {job['_step']}/{total}: training loss={loss:.4f}", "metrics",
                            {"step": job["_step"], "total_steps": total, "train_loss": loss})  # fmt: skip
            if job["_step"] >= total:
                job["status"], job["finished_at"] = "succeeded", int(time.time())
                job["fine_tuned_model"] = f"ft:{job['model']}:fireact:{job['suffix'] or 'run'}:{job['id'][-6:]}"
                job["trained_tokens"] = job["_tokens"]
                self._event(job["id"], "The job has successfully completed")

    def _create_job(self, req: dict) -> tuple[int, dict]:
        data = self.files.get(req.get("training_file"))
        if data is None:
            return 400, {
                "error": {
                    "message": f"invalid training_file: {req.get('training_file')}",
                    "type": "invalid_request_error",
                }
            }
        examples = data.count(b"\n") or 1
        hp = ((req.get("method") or {}).get("supervised") or {}).get("hyperparameters") or {}
        epochs = hp.get("n_epochs") or 3
        job_id = f"ftjob-{len(self.jobs) + 1:06d}"
        job = {
            "id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
            "fine_tuned_model": None, "finished_at": None, "model": req["model"], "organization_id": "org-standin",
            "result_files": [], "seed": req.get("seed") or 42, "status": "validating_files", "trained_tokens": None,
            "training_file": req["training_file"], "validation_file": req.get("validation_file"),
            "hyperparameters": {"n_epochs": epochs, "batch_size": 1, "learning_rate_multiplier": 1.0},
            "metadata": req.get("metadata"), "method": req.get("method"), "suffix": req.get("suffix"),
            "_step": 0, "_total_steps": examples * epochs, "_tokens": len(data) // 4 * epochs,
        }  # fmt: skip
        self.jobs[job_id], self.events[job_id] = job, []
        self._event(job_id, f"Created fine-tuning job: {job_id}")
        return 200, self._public(job)

    @staticmethod
    def _public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def handle(self, method: str, path: str, query: dict[str, str], headers, body: bytes) -> tuple[int, dict]:
        if headers.get("Authorization") != f"Bearer {self.key}":
            return 401, {
                "error": {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        if method == "POST" and parts == ["files"]:
            msg = email.message_from_bytes(b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body)
            upload = next(p for p in msg.walk() if p.get_filename())
            file_id = f"file-{len(self.files) + 1:06d}"
            self.files[file_id] = upload.get_payload(decode=True)
            return 200, {"id": file_id, "object": "file", "bytes": len(self.files[file_id]), "created_at": int(time.time()),
                         "filename": upload.get_filename(), "purpose": "fine-tune", "status": "processed"}  # fmt: skip
        if parts[:2] != ["fine_tuning", "jobs"]:
            return 404, {"error": {"message": f"no route {method} {path}", "type": "invalid_request_error"}}
        rest = parts[2:]
        if method == "POST" and not rest:
            return self._create_job(json.loads(body))
        if method == "GET" and not rest:
            wanted = {k[len("metadata[") : -1]: v for k, v in query.items() if k.startswith("metadata[")}
            jobs = [j for j in self.jobs.values() if all((j["metadata"] or {}).get(k) == v for k, v in wanted.items())]
            return 200, {"object": "list", "data": [self._public(j) for j in reversed(jobs)], "has_more": False}
        job = self.jobs.get(rest[0])
        if job is None:
            return 404, {"error": {"message": f"no fine-tuning job {rest[0]}", "type": "invalid_request_error"}}
        if method == "GET" and len(rest) == 1:
            self._advance(job)
            return 200, self._public(job)
        if method == "GET" and rest[1:] == ["events"]:
            events = list(reversed(self.events[job["id"]]))[: int(query.get("limit", 20))]
            return 200, {"object": "list", "data": events, "has_more": False}
        if method == "POST" and rest[1:] == ["cancel"]:
            if job["status"] not in ("succeeded", "failed", "cancelled"):
                job["status"] = "cancelled"
                self._event(job["id"], "Fine-tuning job cancelled")
            return 200, self._public(job)
        return 404, {"error": {"message": f"no route {method} {path}", "type": "invalid_request_error"}}

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _serve(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlparse(self.path)
                with standin.lock:
                    standin.requests.append(f"{method} {url.path}")
                    fault = standin.faults.pop(0) if standin.faults else None
                    status, reply = 0, {}
                    if not replaces_answer(fault):
                        status, reply = standin.handle(method, url.path, dict(parse_qsl(url.query)), self.headers, body)
                send(self, status, json.dumps(reply).encode(), fault)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler
