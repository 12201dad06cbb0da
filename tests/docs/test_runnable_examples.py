"""Every example the documentation marks as runnable, run as printed, so the pages cannot rot.

The marker is an HTML comment on the line before a fenced block: `<!-- runnable -->`. Markdown keeps
it out of the rendered page, so readers see an ordinary example. A `bash` block runs with
`bash -euo pipefail`, a `python` block with this interpreter, each in a fresh folder holding links to
the repository's `configs/` and `experiments/` (what the examples name by relative path), with
`FIREACT_DATA_DIR` as the suite has it (the `data_dir` fixture). Examples that need GPUs, API keys or the network are shown
unmarked, and their page says so. Marked examples are kept to seconds: `--help`, small data files,
`--dry-run`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"<!-- runnable -->\n```(\w+)[^\n]*\n(.*?)\n```", re.DOTALL)
RUNNERS = {"bash": ["bash", "-euo", "pipefail", "-c"], "python": [sys.executable, "-c"]}


def runnable_examples() -> list[tuple[str, str, str]]:
    """(page:line, language, code) of each marked block in docs/**/*.md."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        assert text.count(MARKER) == len(FENCE.findall(text)), f"{page}: a {MARKER} not followed by a fence"
        for m in FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 2
            found.append((f"{page.relative_to(DOCS)}:{line}", m.group(1), m.group(2)))
    return found


EXAMPLES = runnable_examples()


def test_the_docs_mark_examples_in_every_section():
    pages = {where.split("/")[0] for where, _, _ in EXAMPLES}
    assert {"getting-started", "howto"} <= pages, pages
    assert all(lang in RUNNERS for _, lang, _ in EXAMPLES)


@pytest.mark.parametrize("where,lang,code", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_runnable_example(where, lang, code, tmp_path, request):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # `fireact` itself
    env.pop("OPENAI_API_KEY", None)  # a marked example never reaches a paid API
    if "FIREACT_DATA_DIR" in code:
        env["FIREACT_DATA_DIR"] = str(request.getfixturevalue("data_dir"))  # skips (fails in CI) without it
    for name in ("configs", "experiments"):
        (tmp_path / name).symlink_to(ROOT / name)
    done = subprocess.run([*RUNNERS[lang], code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (
        f"{where} failed:\n{code}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )
