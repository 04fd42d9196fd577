"""Fixtures for the backend and tool tests (import them into a test module by name)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from gateway.config.loader import LoadedAgent, load_agent_config
from gateway.demo.appointments import AppointmentBook, make_app

DENTAL = Path(__file__).resolve().parent.parent / "config" / "agents" / "dental.yaml"


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """`app` on a free loopback port; returns the runner (cleanup) and the base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    port = server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def serving_post(
    path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> AsyncIterator[str]:
    """`handler` for POSTs to `path` on a free loopback port, while in the block; yields the base URL."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner, url = await serve(app)
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.fixture
async def appointment_service() -> AsyncIterator[tuple[str, AppointmentBook]]:
    book = AppointmentBook()
    runner, url = await serve(make_app(book))
    try:
        yield url, book
    finally:
        await runner.cleanup()


def dental_agent(base_url: str) -> LoadedAgent:
    """config/agents/dental.yaml with its tools pointed at `base_url`."""
    return load_agent_config(
        DENTAL,
        [f"tools[0].url={base_url}/availability", f"tools[1].url={base_url}/book"],
    )
