"""A recording gateway: any agent program written with the OpenAI client (the Agents SDK, LangGraph,
DSPy, plain `openai`) is recorded as fireact trajectories by pointing its base URL at
`fireact serve --record DIR` (`/episodes/ID/v1`), then trained on (SFT, expert iteration, GRPO)."""

from fireact.gateway.client import episode_url, finish_episode

__all__ = ["episode_url", "finish_episode"]
