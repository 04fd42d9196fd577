"""Tools as HTTP webhooks declared in the agent YAML (`tools:`).

`ToolRunner.call()` never raises into the call: a timeout, a refused connection, an HTTP error or a
bad argument comes back as a JSON result `{"error": "..."}` that the LLM can talk about ("I can't
reach the booking system right now"). Arguments go as the JSON body (POST/PUT/PATCH) or as query
parameters (GET/DELETE); a JSON answer is passed on compact, any other answer as `{"result": text}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from gateway.backends.base import ToolCall, ToolSchema
from gateway.backends.http import LoopSession
from gateway.config.schema import ToolConfig

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 4000  # what an LLM context can reasonably take from one tool answer


class ToolRunner:
    def __init__(self, tools: Sequence[ToolConfig]) -> None:
        self.tools = {t.name: t for t in tools}
        self._http = LoopSession()

    def schemas(self) -> list[ToolSchema]:
        return [ToolSchema(t.name, t.description, t.parameters) for t in self.tools.values()]

    async def call(self, call: ToolCall) -> str:
        tool = self.tools.get(call.name)
        if tool is None:
            return _error(f"unknown tool {call.name!r}; available: {', '.join(self.tools) or 'none'}")
        problem = _check_arguments(tool.parameters, call.arguments)
        if problem:
            return _error(f"{tool.name}: {problem}")
        try:
            return await asyncio.wait_for(self._request(tool, call.arguments), tool.timeout)
        except TimeoutError:
            log.warning("tool %s timed out after %.1f s", tool.name, tool.timeout)
            return _error(f"{tool.name} did not answer within {tool.timeout:g} seconds")
        except aiohttp.ClientError as exc:
            log.warning("tool %s failed: %s", tool.name, exc)
            return _error(f"{tool.name} could not be reached ({type(exc).__name__})")

    async def _request(self, tool: ToolConfig, arguments: dict[str, Any]) -> str:
        session = self._http.get()
        kwargs: dict[str, Any] = {"headers": tool.headers}
        if tool.method in ("GET", "DELETE"):
            kwargs["params"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}
        else:
            kwargs["json"] = arguments
        async with session.request(tool.method, tool.url, **kwargs) as resp:
            text = await resp.text(errors="replace")
            if resp.status >= 400:
                detail = _detail(text)
                return _error(f"{tool.name} answered HTTP {resp.status}" + (f": {detail}" if detail else ""))
        try:
            data = json.loads(text)
        except ValueError:
            data = {"result": text.strip()}
        out = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if len(out) > MAX_RESULT_CHARS:
            return _error(f"{tool.name} answered {len(out)} characters, more than {MAX_RESULT_CHARS}")
        return out

    async def aclose(self) -> None:
        await self._http.aclose()


def _error(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


def _detail(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200]
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])[:200]
    return ""


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _check_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> str | None:
    """The few JSON-schema rules worth checking before a request: required keys and simple types."""
    if not isinstance(arguments, dict):
        return "arguments must be an object"
    missing = [k for k in schema.get("required", []) if k not in arguments]
    if missing:
        return f"missing argument(s): {', '.join(missing)}"
    for key, value in arguments.items():
        spec = schema.get("properties", {}).get(key)
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            continue
        allowed = _TYPES.get(spec["type"])
        bad_bool = isinstance(value, bool) and spec["type"] in ("integer", "number")
        if allowed and (not isinstance(value, allowed) or bad_bool):
            return f"argument {key!r} must be of type {spec['type']}, got {type(value).__name__}"
    return None
