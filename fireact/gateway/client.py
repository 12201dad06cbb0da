"""What an agent program (or its driver) calls on a recording gateway besides the OpenAI client."""

from __future__ import annotations

from typing import Any

import httpx  # the openai client's own HTTP library

from fireact.errors import FireactError
from fireact.serve.http_app import resolve_api_key


def episode_url(gateway: str, episode: str) -> str:
    """The base URL an agent program's OpenAI client is given to be recorded as `episode`."""
    return f"{gateway.rstrip('/').removesuffix('/v1')}/episodes/{episode}/v1"


def finish_episode(url: str, reward: float, info: dict[str, Any] | None = None, api_key: str | None = None,
                   timeout: float = 30.0) -> dict[str, Any]:  # fmt: skip
    """Close an episode with its reward. `url` is the episode's base URL (what the program's client was
    given, `http://HOST:PORT/episodes/ID/v1`). The key, if the gateway needs one, is `api_key` or
    $FIREACT_API_KEY. FireactError with the gateway's own message when it refuses."""
    base = url.rstrip("/").removesuffix("/v1")
    key = resolve_api_key(api_key)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.post(f"{base}/reward", json={"reward": reward, "info": info}, headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        raise FireactError(f"closing {base}: the gateway is unreachable ({type(e).__name__})") from None
    if r.status_code != 200:
        try:
            said = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            said = r.text[:200]
        raise FireactError(f"closing {base}: HTTP {r.status_code}: {said}")
    return r.json()
