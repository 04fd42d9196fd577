"""docker/nginx/nginx.conf, run by the real nginx (Debian's package) in front of two HTTP nodes.

The compose file puts nginx before the nodes' HTTP edges: carrier media streams and WebRTC
signalling are WebSockets or long requests, so an upgrade must pass through, `/metrics` stays per
node, and a node that fails is skipped. The nodes here are small aiohttp apps that say who they
are; the configuration under test is the shipped file with only its addresses rewritten.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.edges.sip.ports import free_port

CONF = Path(__file__).resolve().parents[1] / "docker" / "nginx" / "nginx.conf"


def _nginx() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        pytest.fail("nginx is not installed (scripts/apt-packages.txt)")
    return found


@dataclass
class Node:
    name: str
    port: int
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


async def _node(name: str) -> Node:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text=name)

    async def media(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        forwarded = request.headers.get("X-Forwarded-For", "")
        async for message in ws:
            await ws.send_str(f"{name} {forwarded} {message.data}")
        return ws

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", healthz)
    app.router.add_get("/media", media)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Node(name, port, runner)


def _rewritten(conf: str, front: int, nodes: list[Node]) -> str:
    assert "server node1:8080" in conf and "server node2:8080" in conf and "listen 8080;" in conf
    for index, node in enumerate(nodes, start=1):
        conf = conf.replace(f"server node{index}:8080", f"server 127.0.0.1:{node.port}")
    return conf.replace("listen 8080;", f"listen 127.0.0.1:{front};")


async def _accepts(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise AssertionError(f"nginx exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("nginx did not listen")


@dataclass
class Front:
    url: str
    nodes: list[Node]


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    nodes = [await _node("node1"), await _node("node2")]
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(_rewritten(CONF.read_text(), port, nodes))
    args = [_nginx(), "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")]
    check = subprocess.run(
        [*args, "-t"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [*args, "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _accepts(port, process)
        yield Front(f"http://127.0.0.1:{port}", nodes)
    finally:
        process.terminate()
        process.wait(timeout=10)
        for node in nodes:
            await node.stop()


async def test_websocket_upgrades_pass_through_to_a_node(front: Front) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{front.url}/media") as ws:
        await ws.send_str("hello")
        reply = await asyncio.wait_for(ws.receive_str(), 10)
    node, forwarded, text = reply.split(" ")
    assert node in {"node1", "node2"}
    assert forwarded == "127.0.0.1"
    assert text == "hello"


async def test_metrics_stay_per_node(front: Front) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{front.url}/metrics") as reply:
            assert reply.status == 404
        async with http.get(f"{front.url}/healthz") as reply:
            assert reply.status == 200
            assert await reply.text() in {"node1", "node2"}


async def test_a_failed_node_is_skipped(front: Front) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{front.url}/healthz") as reply:
            first = await reply.text()
        serving = next(node for node in front.nodes if node.name == first)
        await serving.stop()
        for _ in range(3):
            async with http.get(f"{front.url}/healthz") as reply:
                assert reply.status == 200
                assert await reply.text() != first
