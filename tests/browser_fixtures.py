"""A real browser for end-to-end tests: headless Debian chromium driven over the DevTools protocol.

`Chromium.start(url, wav)` launches chromium with a fake microphone that plays `wav` (looped)
and fake permission prompts, opens `url`, and connects to the DevTools endpoint it announces on
stderr. `CdpPage` sends protocol commands to the page (`evaluate`, `screenshot`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import websockets

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class CdpPage:
    """The DevTools protocol over one WebSocket, flattened sessions, attached to the first page."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.session: str | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            future = self._waiting.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)

    async def send(self, method: str, params: dict[str, Any] | None = None, *, page: bool = True) -> Any:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if page and self.session:
            message["sessionId"] = self.session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self.ws.send(json.dumps(message))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def attach(self) -> None:
        targets = await self.send("Target.getTargets", page=False)
        page = next(t for t in targets["targetInfos"] if t["type"] == "page")
        attached = await self.send(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, page=False
        )
        self.session = attached["sessionId"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    async def screenshot(self, *paths: Path) -> bytes:
        data = base64.b64decode((await self.send("Page.captureScreenshot", {"format": "png"}))["data"])
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return data

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self.ws.close()


class Chromium:
    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: asyncio.subprocess.Process | None = None
        self.page: CdpPage | None = None
        self.stderr: list[str] = []
        self._drainer: asyncio.Task[None] | None = None

    async def start(self, url: str, wav: Path, *, width: int = 1280, height: int = 900) -> CdpPage:
        assert CHROMIUM, "chromium is not installed (scripts/apt-packages.txt)"
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={self.profile}",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--autoplay-policy=no-user-gesture-required",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            url,
        ]
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        endpoint = await asyncio.wait_for(self._devtools_endpoint(), 30)
        self.page = CdpPage(await websockets.connect(endpoint, max_size=None))
        await self.page.attach()
        return self.page

    async def _devtools_endpoint(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            line = (await self.proc.stderr.readline()).decode(errors="replace")
            if not line:
                raise RuntimeError("chromium exited:\n" + "".join(self.stderr[-20:]))
            self.stderr.append(line)
            if "DevTools listening on " in line:
                self._drainer = asyncio.create_task(self._drain())
                return line.split("DevTools listening on ", 1)[1].strip()

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode(errors="replace"))

    async def stop(self) -> None:
        if self.page is not None:
            await self.page.close()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
