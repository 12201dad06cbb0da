"""`--env NAME|FILE.py|package.module` (and `env:` in YAML) -> an Environment.

A user's environment is a Python file or module defining `load_environment(**kwargs) -> Environment`
(verifiers' convention); `--env-args '{"k": 1}'` are its keyword arguments. Each (spec, args) loads
once per process: the questions, the tools and the reward of one run are one object (an MCP server
starts once).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from fireact.env.builtin import BUILTINS
from fireact.env.environment import Environment
from fireact.errors import FireactError

_LOADED: dict[tuple[str, str], Environment] = {}


def parse_env_args(env_args: str | dict[str, Any] | None) -> dict[str, Any]:
    """`--env-args` as keyword arguments: a JSON object (text on the command line, a mapping in YAML)."""
    if env_args is None:
        return {}
    if isinstance(env_args, dict):
        return env_args
    try:
        value = json.loads(env_args)
    except json.JSONDecodeError as e:
        raise FireactError(f"--env-args is not JSON ({e.msg} at column {e.colno}): {env_args!r}") from None
    if not isinstance(value, dict):
        raise FireactError(f"--env-args must be a JSON object of keyword arguments, got {env_args!r}")
    return value


def load_environment(
    spec: str, env_args: str | dict[str, Any] | None = None, data_dir: Path | None = None
) -> Environment:
    """A built-in environment by name, or the one a file's or module's `load_environment` returns."""
    kwargs = parse_env_args(env_args)
    key = (spec, json.dumps(kwargs, sort_keys=True, default=str))
    if key not in _LOADED:
        if spec in BUILTINS:
            env = BUILTINS[spec](data_dir, **kwargs)
        else:
            env = _call_user_loader(_user_module(spec), spec, kwargs)
        _LOADED[key] = env
    return _LOADED[key]


def _user_module(spec: str) -> Any:
    path = Path(spec)
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise FireactError(f"--env {spec}: no such file" + (" (it is a directory)" if path.is_dir() else ""))
        name = f"fireact_user_env_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise FireactError(f"--env {spec}: not a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        _run_user_code(lambda: module_spec.loader.exec_module(module), spec, "importing it")
        return module
    if not all(part.isidentifier() for part in spec.split(".")):
        choices = ", ".join(BUILTINS)
        raise FireactError(f"--env {spec}: not a built-in environment ({choices}), a .py file or a module name")
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as e:
        if e.name and spec.startswith(e.name):
            raise FireactError(
                f"--env {spec}: no built-in environment, file or importable module of that name "
                f"(built-ins: {', '.join(BUILTINS)})"
            ) from None
        raise FireactError(f"--env {spec}: importing it failed: {_user_error(e, spec)}") from None


def _call_user_loader(module: Any, spec: str, kwargs: dict[str, Any]) -> Environment:
    loader = getattr(module, "load_environment", None)
    if not callable(loader):
        raise FireactError(f"--env {spec}: defines no load_environment(**kwargs) function")
    env = _run_user_code(lambda: loader(**kwargs), spec, "load_environment")
    if not isinstance(env, Environment):
        raise FireactError(f"--env {spec}: load_environment returned {type(env).__name__}, not a fireact.Environment")
    return env


def _run_user_code(fn: Any, spec: str, what: str) -> Any:
    try:
        return fn()
    except FireactError:
        raise
    except Exception as e:  # noqa: BLE001  (the user's code: their error, where it happened)
        raise FireactError(f"--env {spec}: {what} raised {_user_error(e, spec)}") from None


def _user_error(e: BaseException, spec: str) -> str:
    """The error as the user's code raised it, with the innermost frame of their file."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "fireact/env/" not in f.filename.replace("\\", "/")]
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(e).__name__}: {e}{where}"
