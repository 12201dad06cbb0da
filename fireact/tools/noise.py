"""The robustness study's noisy search (paper Table 4)."""

from __future__ import annotations

import random
import threading

from fireact.errors import FireactError
from fireact.tools.base import NONE_OBSERVATION, SearchTool


class NoisySearch:
    """The robustness study: with probability p, answer "None" (nothing) or a random earlier observation."""

    def __init__(self, tool: SearchTool, mode: str, p: float = 0.5, seed: int = 0):
        if mode not in ("nothing", "random"):
            raise FireactError(f"unknown noise {mode!r}; choose none, nothing or random")
        if not 0.0 <= p <= 1.0:
            raise FireactError(f"noise probability must be in [0, 1], got {p}")
        self.tool, self.mode, self.p = tool, mode, p
        self.name = f"{tool.name}+{mode}"
        self.blocking_io = False  # inline even over SerpAPI: the noise draws follow the call order
        self.rng = random.Random(seed)
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, query: str) -> str:
        obs = self.tool(query)
        with self._lock:
            noisy = self.rng.random() < self.p
            if noisy and self.mode == "nothing":
                out = NONE_OBSERVATION
            elif noisy and self.seen:
                out = self.rng.choice(self.seen)
            else:
                out = obs
            self.seen.append(obs)
        return out
