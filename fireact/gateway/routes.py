"""`fireact serve --record DIR`: the OpenAI-compatible server with a recorded path per episode.

A program whose client's base URL is `http://HOST:PORT/episodes/EPISODE_ID/v1` keeps its code; every
chat completion it makes there is answered as on `/v1` (same engine batch, same limits, same key) and
appended to that episode. `POST /episodes/EPISODE_ID/reward {"reward": x}` closes it
(`fireact.gateway.finish_episode`). Plain `/v1` is served as always, unrecorded.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from fireact.gateway.recorder import Recorder, check_episode_id
from fireact.serve.http_app import HTTPServer, read_body, request_schema, validated
from fireact.serve.schemas import ChatRequest, RewardRequest
from fireact.serve.server import MAX_BODY, ServedModel, completion_app, parse_request


def add_episode_routes(app: FastAPI, chat: Any, recorder: Recorder, max_tokens_limit: int) -> None:
    @app.post("/episodes/{episode:path}/v1/chat/completions", openapi_extra=request_schema(ChatRequest))
    async def episode_chat(episode: str, request: Request) -> Response:
        """A chat completion recorded as a call of the episode."""
        check_episode_id(episode)
        body = await read_body(request, MAX_BODY)
        req = parse_request(body, max_tokens_limit)
        recorder.check_open(episode)
        return await chat.respond(req, lambda answer: recorder.add(episode, req, answer, len(body)))

    @app.get("/episodes/{episode:path}/v1/models")
    async def episode_models(episode: str) -> dict[str, Any]:
        check_episode_id(episode)
        return {"object": "list", "data": chat.models()}

    @app.post("/episodes/{episode:path}/reward", openapi_extra=request_schema(RewardRequest))
    async def reward(episode: str, request: Request) -> dict[str, Any]:
        """Close the episode with its reward: it is written to the recording, whole, at once."""
        check_episode_id(episode)
        body = validated(RewardRequest, await read_body(request, MAX_BODY))
        return recorder.close(episode, body.reward, body.info)


class Gateway(HTTPServer):
    """The server with its recorder: shutting it down writes the episodes still open, as unscored."""

    def close_service(self) -> None:
        super().close_service()
        self.recorder.close_all()


def make_gateway(chat: Any, recorder: Recorder, host: str = "127.0.0.1", port: int = 8000,
                 api_key: str | None = None, max_tokens_limit: int = 2048) -> Gateway:  # fmt: skip
    """`chat`: a `ServedModel` (token-exact records, and the local routes: /v1/completions, adapters)
    or an `UpstreamChat` (the teacher's text and calls)."""
    served = chat if isinstance(chat, ServedModel) else None
    app = completion_app(chat, api_key, max_tokens_limit, served)
    add_episode_routes(app, chat, recorder, max_tokens_limit)
    server = Gateway(app, host, port, served.service if served else None)
    server.model, server.recorder = chat, recorder
    return server
