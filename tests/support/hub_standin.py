"""A minimal local stand-in for the Hugging Face Hub HTTP API: just enough for `HfApi.create_repo` and
`upload_folder` with regular (non-LFS/xet) files. It stores committed files on disk and rejects
requests without the expected bearer token, so tests see what huggingface_hub really sends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from faults import LocalServer, replaces_answer, send


class HubStandIn(LocalServer):
    def __init__(self, root: Path, token: str) -> None:
        self.root, self.token = root, token
        self.repos: dict[str, dict] = {}  # repo_id -> {"private": bool}
        self.repo_types: dict[str, str] = {}  # repo_id -> "model" | "dataset"
        self.unhandled: list[str] = []
        self.faults: list[str | None] = []  # one per POST, see faults.py
        super().__init__(self._handler())

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            fault: str | None = None

            def _reply(self, status: int, body: dict) -> None:
                send(self, status, json.dumps(body).encode(), self.fault)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.fault = hub.faults.pop(0) if hub.faults else None
                if replaces_answer(self.fault):
                    return send(self, 0, b"", self.fault)
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    req = json.loads(body)
                    repo_id = (
                        f"{req.get('organization') or 'user'}/{req['name']}" if "/" not in req["name"] else req["name"]
                    )
                    hub.repos[repo_id] = {"private": bool(req.get("private")) or req.get("visibility") == "private"}
                    hub.repo_types[repo_id] = req.get("type") or "model"
                    return self._reply(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})
                if path == "/api/validate-yaml":
                    return self._reply(200, {})
                if m := re.fullmatch(r"/api/(?:models|datasets)/(.+)/preupload/([^/]+)", path):
                    if m[1] not in hub.repos:
                        return self._reply(404, {"error": "Repository not found"})
                    files = json.loads(body)["files"]
                    return self._reply(
                        200,
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
                    )
                if m := re.fullmatch(r"/api/(?:models|datasets)/(.+)/commit/([^/]+)", path):
                    if m[1] not in hub.repos:
                        return self._reply(404, {"error": "Repository not found"})
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            out = hub.root / m[1] / item["value"]["path"]
                            out.parent.mkdir(parents=True, exist_ok=True)
                            out.write_bytes(base64.b64decode(item["value"]["content"]))
                        elif item["key"] != "header":
                            return self._reply(400, {"error": f"stand-in does not support {item['key']}"})
                    oid = hashlib.sha1(body).hexdigest()
                    return self._reply(
                        200, {"commitUrl": f"{hub.url}/{m[1]}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}
                    )
                hub.unhandled.append(f"POST {self.path}")
                return self._reply(404, {"error": f"stand-in: no route for {path}"})

            def do_GET(self) -> None:
                hub.unhandled.append(f"GET {self.path}")
                self._reply(404, {"error": "stand-in: no GET routes"})

        return Handler
