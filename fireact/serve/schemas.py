"""The request bodies of fireact's HTTP routes as pydantic models: what /docs shows. The routes read
their bodies themselves (bounded, under a deadline) and check each field with the message the OpenAI
API gives (`server.parse_request`); these models say the same contract to a reader and to OpenAPI
clients. Other fields of the OpenAI API are accepted and ignored, as vLLM does."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="the served name, or a loaded LoRA adapter's name")
    max_tokens: int | None = Field(None, ge=1, description="at most the server's --max-tokens-limit")
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, description="this request's own sampling seed")


class ChatRequest(_Sampling):
    """POST /v1/chat/completions (and /episodes/ID/v1/chat/completions on a recording gateway)."""

    messages: list[dict[str, Any]] = Field(
        min_length=1, max_length=256, description="system, user, assistant (text or tool_calls) and tool messages"
    )
    tools: list[dict[str, Any]] | None = Field(None, description="function tools: {type, function: {name, parameters}}")
    tool_choice: Literal["auto", "none"] = "auto"
    stream: bool = False
    n: Literal[1] = 1


class CompletionsRequest(_Sampling):
    """POST /v1/completions as rollout clients send it (vLLM's surface): text or token-id prompts."""

    prompt: str | list[int] = Field(description="text, or token ids of the served tokenizer")
    logprobs: Literal[0, 1] | None = Field(None, description="1: the sampled token's log-prob")
    prompt_logprobs: Literal[0, 1] | None = Field(
        None, description="each prompt token's log-prob given the ones before it (vLLM's; 1 adds the top one)"
    )
    return_token_ids: bool = False
    return_tokens_as_token_ids: bool = False


class RewardRequest(BaseModel):
    """POST /episodes/ID/reward: closes the episode with its reward."""

    model_config = ConfigDict(extra="forbid")

    reward: float = Field(allow_inf_nan=False, description="the episode's reward (1 for a success)")
    info: dict[str, Any] | None = Field(None, description="kept with the episode (e.g. the example's id)")
