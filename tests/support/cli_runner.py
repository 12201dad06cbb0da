"""Runs a `python -m fireact ...` or `python -m fireact.train ...` command line in a forked process.

Each command still runs in a process of its own, with its own environment, working directory, stdout,
stderr and exit status, through the same `main()` that `python -m` calls. What it skips is the ~5 s of
importing torch, Lightning and transformers: a fork server imports them once (per pytest worker) and
forks every command from there. Cases whose point is the interpreter itself (an `exec` through
`setpriv`, a `-c` script) run as plain subprocesses instead.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence

ENTRY_POINTS = {"fireact": "fireact.cli", "fireact.train": "fireact.train"}
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["fireact.cli", "fireact.train", "lightning.pytorch", "transformers", "peft"])


def _main(module: str, args: list[str], env: Mapping[str, str], cwd: str, out: str, err: str) -> None:
    """In the forked child: the command's environment, directory and output files, then its main()."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    try:
        code = __import__(module, fromlist=["main"]).main(args)
    except SystemExit as e:  # argparse's usage errors, --help: as the interpreter ends on them
        code = e.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001  (what the interpreter would print for an uncaught exception)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def run_cli(
    argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None, timeout: float = 90,
    fresh: bool = False,
) -> subprocess.CompletedProcess:  # fmt: skip
    """`argv` as `[sys.executable, "-m", "fireact" | "fireact.train", ...]`, forked; anything else, or with
    `fresh` (what a new interpreter prints is checked, or `env` sets what is read at import), runs as a
    subprocess."""
    argv = [str(a) for a in argv]
    is_module = not fresh and len(argv) > 2 and argv[:2] == [sys.executable, "-m"]
    module = ENTRY_POINTS.get(argv[2]) if is_module else None
    env = dict(os.environ if env is None else env)
    cwd = str(cwd or os.getcwd())
    if module is None:
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        child = _CONTEXT.Process(target=_main, args=(module, argv[3:], env, cwd, out, err))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(argv, timeout)
        read = {p: open(p, encoding="utf-8", errors="replace").read() for p in (out, err)}
        return subprocess.CompletedProcess(argv, child.exitcode, read[out], read[err])
