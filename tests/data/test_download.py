"""`fireact data download` against a local stand-in for GitHub (no internet here)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fireact.cli import main
from fireact.data import download

FILES = {
    "data/hotpotqa/dev.json": json.dumps([{"question": "Q?", "answer": "A"}]).encode(),
    "data/finetune/gpt_format/hotpotqa.jsonl": json.dumps(
        {
            "messages": [
                {"role": "user", "content": "Q?"},
                {"role": "assistant", "content": "Thought: t\nAction: search[q1]"},
                {"role": "user", "content": "Observation: snippet one"},
            ]
        }
    ).encode(),
    "trajs/run.json": json.dumps({"0": {"traj": [{"role": "user", "content": "Q?"}], "gt": "a"}}).encode(),
    "README.md": b"not fetched",
}


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeGitHub(BaseHTTPRequestHandler):
    files = FILES
    requests: list[tuple[str, str | None]] = []
    corrupt: set[str] = set()

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append((self.path, self.headers.get("Range")))
        if self.path.startswith("/api/repos/"):
            tree = [{"path": p, "type": "blob", "size": len(d), "sha": blob_sha(d)} for p, d in self.files.items()]
            body, status = json.dumps({"tree": tree}).encode(), 200
        else:
            path = self.path.split("/main/", 1)[1]
            body = self.files[path] if path not in self.corrupt else b"x" * len(self.files[path])
            status = 200
            if rng := self.headers.get("Range"):
                body, status = body[int(rng.split("=")[1].rstrip("-")) :], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    FakeGitHub.requests.clear()
    FakeGitHub.corrupt.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def run_download(url: str, root) -> int:
    return main(["data", "download", "--data-dir", str(root), "--api-url", f"{url}/api", "--raw-url", f"{url}/raw"])


def test_download_verifies_builds_snapshot_and_is_idempotent(server, tmp_path, capsys):
    assert run_download(server, tmp_path) == 0
    assert (tmp_path / "hotpotqa/dev.json").read_bytes() == FILES["data/hotpotqa/dev.json"]
    assert (tmp_path / "trajs/run.json").is_file() and not (tmp_path / "README.md").exists()
    snapshot = [json.loads(line) for line in (tmp_path / "search_snapshot.jsonl").read_text().splitlines()]
    assert snapshot == [{"query": "q1", "snippet": "snippet one", "source": "fireact-finetune"}]
    assert "3 downloaded" in capsys.readouterr().out
    FakeGitHub.requests.clear()
    assert run_download(server, tmp_path) == 0
    assert "0 downloaded, 3 already there" in capsys.readouterr().out
    assert all(path.startswith("/api/") for path, _ in FakeGitHub.requests)


def test_download_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    data = FILES["data/hotpotqa/dev.json"]
    (tmp_path / "hotpotqa").mkdir()
    (tmp_path / "hotpotqa/dev.json.part").write_bytes(data[:10])
    assert run_download(server, tmp_path) == 0
    assert (tmp_path / "hotpotqa/dev.json").read_bytes() == data
    assert ("/raw/anchen1011/FireAct/main/data/hotpotqa/dev.json", "bytes=10-") in FakeGitHub.requests


def test_download_rejects_a_corrupt_file(server, tmp_path, capsys):
    FakeGitHub.corrupt.add("trajs/run.json")
    assert run_download(server, tmp_path) == 2
    assert "trajs/run.json: checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "trajs/run.json").exists()


def test_download_reports_an_unreachable_server(tmp_path, capsys):
    assert run_download("http://127.0.0.1:9", tmp_path) == 2
    assert "cannot list anchen1011/FireAct" in capsys.readouterr().err


def test_git_blob_sha_matches_git(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"hello\n")
    assert download.git_blob_sha(f) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`
