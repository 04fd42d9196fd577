"""`openai-compatible`: chat completions over HTTP with streaming (SSE) and tool calls.

YAML: `llm: {provider: openai-compatible, base_url: "${LLM_BASE_URL}", model: ..., api_key:
"${LLM_API_KEY}", temperature: null, max_tokens: null, timeout: 10, connect_timeout: 3, retries: 2}`.
Works with OpenAI, vLLM, Ollama (`/v1`), llama.cpp server and Groq: `POST {base_url}/chat/completions`
with `stream: true`; each `data:` line carries `choices[0].delta` with `content` and/or
`tool_calls[{index, id, function: {name, arguments}}]` fragments (assembled here by `index`),
`finish_reason`, and, with `stream_options.include_usage`, a last chunk with `usage`.

Retries (with backoff, honouring `Retry-After`) on connection errors, 429 and 5xx: always before any
token was streamed, since a status arrives before the body. A stream that breaks after tokens were
yielded is a `BackendError`. Closing the iterator closes the connection (the server stops generating).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import Field, SecretStr

from gateway.backends.base import (
    BackendError,
    ChatMessage,
    LlmChunk,
    LlmDone,
    TextDelta,
    ToolCall,
    ToolSchema,
)
from gateway.backends.http import HttpBackend
from gateway.backends.options import ProviderOptions
from gateway.config.loader import LoadedAgent

log = logging.getLogger(__name__)


class Options(ProviderOptions):
    base_url: str = Field(default="https://api.openai.com/v1", pattern=r"^https?://")
    model: str = Field(min_length=1)
    api_key: SecretStr | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    # Seconds to the response headers, and between two streamed chunks.
    timeout: float = Field(default=10.0, gt=0)
    connect_timeout: float = Field(default=3.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.5, ge=0)
    max_retry_after: float = Field(default=10.0, ge=0)
    # Ask for a usage chunk (stream_options.include_usage); some servers reject the key.
    include_usage: bool = True
    extra_body: dict[str, Any] = Field(default_factory=dict)


def to_wire(message: ChatMessage) -> dict[str, Any]:
    """A `ChatMessage` as the chat-completions API spells it."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in message.tool_calls
        ]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id or ""
    if message.name and message.role == "user":
        out["name"] = message.name
    return out


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAICompatibleLLM(HttpBackend):
    name = "openai-compatible"

    def __init__(self, options: Options) -> None:
        super().__init__(
            options.base_url.rstrip("/") + "/chat/completions",
            options,
            api_key=options.api_key,
            model=options.model,
            headers={"Accept": "text/event-stream"},
        )
        self.options = options

    def _body(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema]) -> dict[str, Any]:
        o = self.options
        body: dict[str, Any] = {
            "model": o.model,
            "messages": [to_wire(m) for m in messages],
            "stream": True,
        }
        if o.include_usage:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
        if o.temperature is not None:
            body["temperature"] = o.temperature
        if o.max_tokens is not None:
            body["max_tokens"] = o.max_tokens
        body.update(o.extra_body)
        return body

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()
    ) -> AsyncIterator[LlmChunk]:
        deadline = self.options.connect_timeout + self.options.timeout
        resp = await self.post(self._body(messages, tools), deadline=deadline, log=log)
        calls: dict[int, _PartialCall] = {}
        finish = ""
        done = False
        try:
            async for data in _sse_data(resp, self.name):
                if data == "[DONE]":
                    done = True
                    break
                chunk = _json(data, self.name)
                if "error" in chunk:
                    raise BackendError(f"{self.name}: error in stream: {chunk['error']}")
                usage = chunk.get("usage")
                if isinstance(usage, dict):
                    self._usage.input_tokens += int(usage.get("prompt_tokens") or 0)
                    self._usage.output_tokens += int(usage.get("completion_tokens") or 0)
                choices = chunk.get("choices")
                if not isinstance(choices, list):
                    raise BackendError(f"{self.name}: malformed chunk without 'choices': {data[:200]}")
                for choice in choices:
                    delta = choice.get("delta") or {}
                    if not isinstance(delta, dict):
                        raise BackendError(f"{self.name}: malformed 'delta': {data[:200]}")
                    text = delta.get("content")
                    if text:
                        yield TextDelta(text)
                    for frag in delta.get("tool_calls") or ():
                        _merge(calls, frag, self.name)
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
            if not done and not finish:
                raise BackendError(f"{self.name}: stream ended early (no finish_reason, no [DONE])")
            for index in sorted(calls):
                yield _assemble(calls[index], index, self.name)
            yield LlmDone("tool_calls" if calls else finish or "stop")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendError(f"{self.name}: stream broken: {exc or type(exc).__name__}") from exc
        finally:
            # Unread body left: close the connection, which tells the server to stop generating.
            resp.close()


async def _sse_data(resp: aiohttp.ClientResponse, name: str) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent event stream (multi-line data joined with newlines)."""
    lines: list[str] = []
    async for raw in resp.content:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        key, _, value = line.partition(":")
        if key == "data":
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        yield "\n".join(lines)


def _json(data: str, name: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise BackendError(f"{name}: malformed stream, not JSON: {data[:200]!r}") from None
    if not isinstance(chunk, dict):
        raise BackendError(f"{name}: malformed stream, expected an object: {data[:200]!r}")
    return chunk


def _merge(calls: dict[int, _PartialCall], frag: Any, name: str) -> None:
    if not isinstance(frag, dict) or not isinstance(frag.get("index", 0), int):
        raise BackendError(f"{name}: malformed tool_calls fragment: {str(frag)[:200]}")
    call = calls.setdefault(frag.get("index", 0), _PartialCall())
    if frag.get("id"):
        call.id = str(frag["id"])
    fn = frag.get("function") or {}
    if fn.get("name"):
        call.name += str(fn["name"])
    if fn.get("arguments"):
        call.arguments.append(str(fn["arguments"]))


def _assemble(call: _PartialCall, index: int, name: str) -> ToolCall:
    if not call.name:
        raise BackendError(f"{name}: tool call #{index} has no function name")
    text = "".join(call.arguments) or "{}"
    try:
        arguments = json.loads(text)
    except ValueError:
        raise BackendError(
            f"{name}: tool call {call.name!r} has arguments that are not JSON: {text[:200]!r}"
        ) from None
    if not isinstance(arguments, dict):
        raise BackendError(
            f"{name}: tool call {call.name!r} arguments must be a JSON object, got {text[:200]!r}"
        )
    return ToolCall(call.id or f"call_{index}", call.name, arguments)


def build(options: Options, loaded: LoadedAgent | None) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(options)
