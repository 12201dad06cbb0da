"""fireact: language-agent fine-tuning (FireAct, Chen et al. 2023) on PyTorch Lightning.

The names a user's environment file needs are here (`fireact.Environment`, `fireact.Tool`,
`fireact.MCPServer`, `fireact.Trajectory`), imported on first use so `import fireact` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Environment": "fireact.env.environment",
    "Tool": "fireact.tools.function",
    "MCPServer": "fireact.tools.mcp",
    "Trajectory": "fireact.data.trajectory",
    "Turn": "fireact.data.trajectory",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fireact' has no attribute {name!r}")
