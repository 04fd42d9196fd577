"""The OpenAI-compatible LLM vs a local server speaking chat-completions SSE (shapes from the API docs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from gateway.backends.base import BackendError, ChatMessage, LlmDone, TextDelta, ToolCall, ToolSchema
from gateway.backends.llm.openai_compatible import OpenAICompatibleLLM, Options
from tests.backend_fixtures import serve, serving_post

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def chunk(delta: dict | None = None, finish: str | None = None, **extra: object) -> dict:
    body: dict = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    body.update(extra)
    return body


async def sse(request: web.Request, events: list[object]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for e in events:
        data = e if isinstance(e, str) else json.dumps(e)
        await resp.write(f"data: {data}\n\n".encode())
    return resp


class Server:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.handlers: list[Handler] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        handler = self.handlers[min(len(self.requests), len(self.handlers)) - 1]
        return await handler(request)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    s = Server()
    async with serving_post("/v1/chat/completions", s.handle) as url:
        yield s, url + "/v1"


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Handler:
    """A handler answering `status` with an API-style error body."""

    async def reply(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": message}}, status=status, headers=headers)

    return reply


def llm(url: str, **kw: object) -> OpenAICompatibleLLM:
    opts = {"base_url": url, "model": "m", "api_key": "sk-test", "retry_backoff": 0.0, **kw}
    return OpenAICompatibleLLM(Options.model_validate(opts))


async def collect(model: OpenAICompatibleLLM, tools: list[ToolSchema] | None = None) -> list[object]:
    try:
        return [c async for c in model.chat([ChatMessage("user", "hi")], tools or [])]
    finally:
        await model.aclose()


async def test_streams_text_and_usage(server: tuple[Server, str]) -> None:
    s, url = server
    events: list[object] = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2}},
        "[DONE]",
    ]
    s.handlers = [lambda r: sse(r, events)]
    model = llm(url, temperature=0.3)
    out = await collect(model, [ToolSchema("f", "does f", {"type": "object", "properties": {}})])
    assert out == [TextDelta("Hel"), TextDelta("lo"), LlmDone("stop")]
    body = s.requests[0]
    assert body["stream"] is True and body["model"] == "m" and body["temperature"] == 0.3
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "f",
            "description": "does f",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    assert s.headers[0]["Authorization"] == "Bearer sk-test"
    u = model.usage()
    assert (u.requests, u.input_tokens, u.output_tokens) == (1, 12, 2)


async def test_tool_call_deltas_are_assembled(server: tuple[Server, str]) -> None:
    s, url = server
    events: list[object] = [
        chunk({"role": "assistant", "content": None, "tool_calls": [{
            "index": 0, "id": "call_a", "type": "function",
            "function": {"name": "check", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"da'}}]}),
        chunk({"tool_calls": [{
            "index": 1, "id": "call_b", "type": "function",
            "function": {"name": "book", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'te": "tuesday"}'}}]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    ]  # fmt: skip
    s.handlers = [lambda r: sse(r, events)]
    out = await collect(llm(url))
    assert out == [
        ToolCall("call_a", "check", {"date": "tuesday"}),
        ToolCall("call_b", "book", {}),
        LlmDone("tool_calls"),
    ]


async def test_history_with_tool_results_on_the_wire(server: tuple[Server, str]) -> None:
    s, url = server
    s.handlers = [lambda r: sse(r, [chunk({"content": "ok"}, "stop"), "[DONE]"])]
    model = llm(url)
    history = [
        ChatMessage("system", "be brief"),
        ChatMessage("user", "book"),
        ChatMessage("assistant", tool_calls=[ToolCall("c1", "check", {"date": "tue"})]),
        ChatMessage("tool", '{"slots": []}', tool_call_id="c1", name="check"),
    ]
    assert [c async for c in model.chat(history)][-1] == LlmDone("stop")
    await model.aclose()
    assert s.requests[0]["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "check", "arguments": '{"date": "tue"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"slots": []}', "tool_call_id": "c1"},
    ]


async def test_cancel_mid_stream_closes_the_connection(server: tuple[Server, str]) -> None:
    s, url = server
    closed = asyncio.Event()
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for _ in range(2000):  # bounded: 20 s at most
                await resp.write(f"data: {json.dumps(chunk({'content': 'word '}))}\n\n".encode())
                sent += 1
                await asyncio.sleep(0.01)
        except (ConnectionResetError, ConnectionError):
            closed.set()
        return resp

    s.handlers = [endless]
    model = llm(url)
    stream = model.chat([ChatMessage("user", "talk")])
    first = await anext(stream)
    assert first == TextDelta("word ")
    await stream.aclose()
    await asyncio.wait_for(closed.wait(), 10)
    assert sent < 2000
    await model.aclose()


async def test_retries_5xx_and_429_then_streams(server: tuple[Server, str]) -> None:
    s, url = server
    unavailable = json_error(503, "overloaded")
    limited = json_error(429, "slow down", {"Retry-After": "0"})
    s.handlers = [unavailable, limited, lambda r: sse(r, [chunk({"content": "hi"}, "stop"), "[DONE]"])]
    model = llm(url, retries=2)
    assert await collect(model) == [TextDelta("hi"), LlmDone("stop")]
    assert len(s.requests) == 3 and model.usage().requests == 3


async def test_gives_up_after_retries(server: tuple[Server, str]) -> None:
    s, url = server
    s.handlers = [json_error(500, "boom")]
    with pytest.raises(BackendError, match=r"HTTP 500 .*boom"):
        await collect(llm(url, retries=1))
    assert len(s.requests) == 2


async def test_client_errors_are_not_retried(server: tuple[Server, str]) -> None:
    s, url = server
    s.handlers = [json_error(404, "model not found")]
    with pytest.raises(BackendError, match=r"HTTP 404.*model not found"):
        await collect(llm(url, retries=3))
    assert len(s.requests) == 1


async def test_timeout_waiting_for_the_response(server: tuple[Server, str]) -> None:
    s, url = server
    release = asyncio.Event()

    async def stuck(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 10)
        return web.json_response({})

    s.handlers = [stuck]
    with pytest.raises(BackendError, match=r"no response .* within 0.2 s"):
        await collect(llm(url, timeout=0.2))
    release.set()
    assert len(s.requests) == 1  # a request the server took is not sent twice


async def test_stall_mid_stream_times_out(server: tuple[Server, str]) -> None:
    s, url = server
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = await sse(request, [chunk({"content": "one"})])
        await asyncio.wait_for(release.wait(), 10)
        return resp

    s.handlers = [stall]
    model = llm(url, timeout=0.2)
    got: list[object] = []
    with pytest.raises(BackendError, match="stream broken"):
        async for c in model.chat([ChatMessage("user", "x")]):
            got.append(c)
    release.set()
    assert got == [TextDelta("one")]
    await model.aclose()


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (["{not json"], "not JSON"),
        ([{"id": "x", "object": "chat.completion.chunk"}], "without 'choices'"),
        ([chunk({"content": "partial"})], "stream ended early"),
        (
            [
                chunk(
                    {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{oops"}}]}
                ),
                chunk({}, "tool_calls"),
                "[DONE]",
            ],
            "arguments that are not JSON",
        ),
        ([{"error": {"message": "context length exceeded"}}], "context length exceeded"),
    ],
)
async def test_malformed_streams(server: tuple[Server, str], events: list[object], message: str) -> None:
    s, url = server
    s.handlers = [lambda r: sse(r, events)]
    with pytest.raises(BackendError, match=message):
        await collect(llm(url))


async def test_connection_refused_is_retried_then_reported() -> None:
    runner, url = await serve(web.Application())
    await runner.cleanup()  # the port is free again: nothing listens
    model = llm(url + "/v1", retries=1)
    with pytest.raises(BackendError, match="cannot connect"):
        await collect(model)
    assert model.usage().requests == 2
