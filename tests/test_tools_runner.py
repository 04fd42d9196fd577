"""ToolRunner: webhooks called with the LLM's arguments; every failure is a result, never an exception."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.agents.tools import ToolRunner
from gateway.backends.base import ToolCall, ToolSchema
from gateway.config.schema import ToolConfig
from tests.backend_fixtures import serve


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[str, list[object], asyncio.Event]]:
    seen: list[object] = []
    release = asyncio.Event()

    async def echo(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"echo": seen[-1], "auth": request.headers.get("X-Key")})

    async def query(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.Response(text="plain answer")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 10)
        return web.json_response({})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "calendar locked"}, status=500)

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/query", query)
    app.router.add_post("/slow", slow)
    app.router.add_post("/fail", fail)
    runner, url = await serve(app)
    yield url, seen, release
    release.set()
    await runner.cleanup()


def tools(url: str) -> ToolRunner:
    schema = {
        "type": "object",
        "properties": {"date": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["date"],
    }
    return ToolRunner(
        [
            ToolConfig(
                name="echo", url=f"{url}/echo", parameters=schema, headers={"X-Key": "k"}, description="d"
            ),
            ToolConfig(name="query", url=f"{url}/query", method="GET"),
            ToolConfig(name="slow", url=f"{url}/slow", timeout=0.2),
            ToolConfig(name="fail", url=f"{url}/fail"),
        ]
    )


async def test_calls(hooks: tuple[str, list[object], asyncio.Event]) -> None:
    url, seen, _ = hooks
    runner = tools(url)
    try:
        assert runner.schemas()[0] == ToolSchema("echo", "d", runner.tools["echo"].parameters)
        out = json.loads(await runner.call(ToolCall("1", "echo", {"date": "tue", "n": 2})))
        assert out == {"echo": {"date": "tue", "n": 2}, "auth": "k"}
        assert json.loads(await runner.call(ToolCall("2", "query", {"q": "x", "n": 3}))) == {
            "result": "plain answer"
        }
        assert seen[-1] == {"q": "x", "n": "3"}
    finally:
        await runner.aclose()


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        ("slow", {}, "slow did not answer within 0.2 seconds"),
        ("fail", {}, "fail answered HTTP 500: calendar locked"),
        ("echo", {"n": 1}, "echo: missing argument(s): date"),
        ("echo", {"date": "tue", "n": "two"}, "echo: argument 'n' must be of type integer, got str"),
        ("nope", {}, "unknown tool 'nope'; available: echo, query, slow, fail"),
    ],
)
async def test_failures_are_results(
    hooks: tuple[str, list[object], asyncio.Event], name: str, arguments: dict, error: str
) -> None:
    url, _, _ = hooks
    runner = tools(url)
    try:
        assert json.loads(await runner.call(ToolCall("1", name, arguments))) == {"error": error}
    finally:
        await runner.aclose()


async def test_unreachable() -> None:
    runner = ToolRunner([ToolConfig(name="gone", url="http://127.0.0.1:9/x")])
    out = json.loads(await runner.call(ToolCall("1", "gone", {})))
    assert out["error"].startswith("gone could not be reached")
    await runner.aclose()
