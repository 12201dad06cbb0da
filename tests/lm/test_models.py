"""The default model's one-time conversion (GGUF -> HF folder) when several processes start at once."""

from __future__ import annotations

import os
import subprocess
import sys

CHILD = """
import sys, time
from pathlib import Path
import fireact.lm.models as models

def convert(out: Path) -> None:  # the real one: ~20 CPU-seconds; this one counts and is slow enough to overlap
    with open(sys.argv[1], "a") as f:
        f.write("converted\\n")
    time.sleep(1.0)
    (out / "config.json").write_text("{}")

models._convert_gguf = convert
print(models.resolve_model(models.DEFAULT_MODEL))
"""


def test_processes_started_together_convert_the_default_model_once(tmp_path):
    env = {**os.environ, "FIREACT_MODEL_CACHE": str(tmp_path / "models")}
    count = tmp_path / "conversions"
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(count)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outs == [str(tmp_path / "models" / "smollm2-135m")] * 3
    assert count.read_text().splitlines() == ["converted"]  # the others waited and read the folder
    assert not list((tmp_path / "models").glob("*.tmp*"))
