"""`fireact data download` against a local stand-in for GitHub (no internet here)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from faults import refused_url, send

from fireact import retry
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
LOCAL = {"data/hotpotqa/dev.json": "hotpotqa/dev.json", "trajs/run.json": "trajs/run.json"}


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeGitHub(BaseHTTPRequestHandler):
    files = FILES
    requests: list[tuple[str, str | None]] = []
    corrupt: set[str] = set()
    faults: list[str] = []  # one per request, see faults.py
    tree_body: bytes | None = None  # replaces the tree listing when set

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append((self.path, self.headers.get("Range")))
        fault = self.faults.pop(0) if self.faults else None
        if self.path.startswith("/api/repos/"):
            tree = [{"path": p, "type": "blob", "size": len(d), "sha": blob_sha(d)} for p, d in self.files.items()]
            return send(self, 200, self.tree_body or json.dumps({"tree": tree}).encode(), fault)
        path = self.path.split("/main/", 1)[1]
        body = self.files[path] if path not in self.corrupt else b"x" * len(self.files[path])
        status = 200
        if rng := self.headers.get("Range"):
            body, status = body[int(rng.split("=")[1].rstrip("-")) :], 206
        send(self, status, body, fault, content_type="application/octet-stream")


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(retry, "DELAYS", (0.0, 0.0, 0.0))  # the retry policy, without the waiting
    monkeypatch.setattr(download, "TIMEOUT", 0.5)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    FakeGitHub.requests.clear()
    FakeGitHub.corrupt.clear()
    FakeGitHub.faults.clear()
    FakeGitHub.tree_body = None
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


def test_download_survives_transient_faults_and_resumes_a_cut_body(server, tmp_path):
    """429, 500, a timeout and a body cut in half, each retried: the cut file continues with a Range
    request from the bytes that arrived, and every file ends verified."""
    FakeGitHub.faults[:] = ["429", "500", "slow", None, "cut"]  # list x3 then ok; first file: cut, then resumed
    assert run_download(server, tmp_path) == 0
    first = FakeGitHub.requests[4][0]
    resumed = [rng for path, rng in FakeGitHub.requests[5:] if path == first]
    name = first.split("/main/data/", 1)[1]
    assert resumed == [f"bytes={len(FILES['data/' + name]) // 2}-"]
    assert all((tmp_path / local).read_bytes() == FILES[path] for path, local in LOCAL.items())


def test_download_gives_up_on_a_server_that_stays_down_and_keeps_what_arrived(server, tmp_path, capsys):
    FakeGitHub.faults[:] = [None, "cut"] + ["503"] * 4  # the first file: half, then 503 on every retry
    assert run_download(server, tmp_path) == 2
    err = capsys.readouterr().err
    assert "download of data/hotpotqa/dev.json" in err and "after 4 attempts: HTTPError: HTTP Error 503" in err
    assert "transient: run again later" in err and "Traceback" not in err
    part = tmp_path / "hotpotqa/dev.json.part"
    assert part.read_bytes() == FILES["data/hotpotqa/dev.json"][: part.stat().st_size] and part.stat().st_size > 0
    assert run_download(server, tmp_path) == 0  # the rerun continues from the kept bytes
    assert (tmp_path / "hotpotqa/dev.json").read_bytes() == FILES["data/hotpotqa/dev.json"]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("refused", "(transient: run again later)"),
        ("html", "the reply is not JSON (starts b'<html>"),
        ("404", "HTTP Error 404: Not Found (not a transient error: retrying will not help)"),
    ],
)
def test_download_says_what_failed_and_whether_to_retry(server, tmp_path, capsys, fault, expected):
    url = refused_url() if fault == "refused" else server
    FakeGitHub.faults[:] = [fault] * 4
    assert run_download(url, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("fireact data: error: listing anchen1011/FireAct@main at ") and expected in err, err
    assert len(err.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


def test_git_blob_sha_matches_git(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"hello\n")
    assert download.git_blob_sha(f) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`
