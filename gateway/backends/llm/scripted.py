"""`scripted`: a deterministic LLM stand-in that follows the agent file's `policy:` (see `policy.py`).

YAML: `llm: {provider: scripted}` plus a top-level `policy:` section. For demos, tests and IVR-style
agents: no model, no network, the same answer to the same history every time. Tool names in the
policy must be declared under `tools:`; slots and `{placeholders}` must exist. Errors name the
policy's own lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from pydantic import Field, ValidationError

from gateway.backends.base import ChatMessage, LlmChunk, LlmDone, TextDelta, ToolCall, ToolSchema, Usage
from gateway.backends.llm.dialog import Call, Dialog
from gateway.backends.llm.policy import PLACEHOLDER, Policy
from gateway.backends.options import ProviderOptions, config_error
from gateway.config.errors import ConfigError, KeyPath
from gateway.config.loader import LoadedAgent


class Options(ProviderOptions):
    # Words per streamed text delta (1: word by word, like a real LLM).
    words_per_delta: int = Field(default=1, ge=1, le=100)


def load_policy(loaded: LoadedAgent | None) -> Policy:
    """The validated `policy:` section, cross-checked against slots and declared tools."""
    raw = None if loaded is None else loaded.config.policy
    if raw is None:
        raise config_error(loaded, ("llm", "provider"), "the scripted LLM needs a policy: section")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            msg = str(err.get("msg", err["type"])).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            errors.append(config_error(loaded, ("policy", *err["loc"]), msg))
        raise ConfigError.group(errors) from None
    assert loaded is not None
    tools = {t.name for t in loaded.config.tools}
    problems: list[ConfigError] = []

    def need_slot(path: KeyPath, slot: str) -> None:
        if slot not in policy.slots:
            problems.append(
                config_error(loaded, path, f"unknown slot {slot!r}; declared: {_names(policy.slots)}")
            )

    def need_tool(path: KeyPath, name: str) -> None:
        if name not in tools:
            problems.append(
                config_error(loaded, path, f"unknown tool {name!r}; declared under tools: {_names(tools)}")
            )

    def template(path: KeyPath, text: str, result: bool) -> None:
        for m in PLACEHOLDER.finditer(text):
            head = m.group(1).split(".")[0]
            if head == "result":
                if not result:
                    problems.append(config_error(loaded, path, "{result...} is only known after a tool call"))
            else:
                need_slot(path, head)

    def arguments(path: KeyPath, value: object) -> None:
        if isinstance(value, str):
            template(path, value, False)
        elif isinstance(value, dict):
            for k, v in value.items():
                arguments((*path, k), v)

    template(("policy", "fallback"), policy.fallback, False)
    for i, intent in enumerate(policy.intents):
        at: KeyPath = ("policy", "intents", i)
        for j, step in enumerate(intent.ask):
            need_slot((*at, "ask", j, "slot"), step.slot)
            if step.tool is not None:
                need_tool((*at, "ask", j, "tool", "name"), step.tool.name)
                arguments((*at, "ask", j, "tool", "arguments"), step.tool.arguments)
            template((*at, "ask", j, "prompt"), step.prompt, step.tool is not None)
        if intent.call is not None:
            need_tool((*at, "call", "name"), intent.call.name)
            arguments((*at, "call", "arguments"), intent.call.arguments)
        if intent.reply is not None:
            template((*at, "reply"), intent.reply, intent.call is not None)
        if intent.on_error is not None:
            template((*at, "on_error", "reply"), intent.on_error.reply, True)
            for k, slot in enumerate(intent.on_error.clear):
                need_slot((*at, "on_error", "clear", k), slot)
    if problems:
        raise ConfigError.group(problems)
    return policy


def _names(names: object) -> str:
    items = sorted(names) if isinstance(names, dict | set) else []
    return ", ".join(items) or "(none)"


def check(options: Options, loaded: LoadedAgent | None) -> None:
    load_policy(loaded)


class ScriptedLLM:
    name = "scripted"

    def __init__(self, policy: Policy, options: Options | None = None) -> None:
        self.dialog = Dialog(policy)
        self._options = options or Options()
        self._usage = Usage(provider="scripted", model="policy")

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSchema] = ()
    ) -> AsyncIterator[LlmChunk]:
        self._usage.requests += 1
        self._usage.input_tokens += sum(len(m.content.split()) for m in messages)
        action = self.dialog.respond(messages)
        if isinstance(action, Call):
            yield ToolCall(action.id, action.name, dict(action.arguments))
            yield LlmDone("tool_calls")
            return
        words = action.text.split()
        n = self._options.words_per_delta
        for k in range(0, len(words), n):
            self._usage.output_tokens += len(words[k : k + n])
            yield TextDelta(("" if k == 0 else " ") + " ".join(words[k : k + n]))
            await asyncio.sleep(0)  # a real stream yields to the loop: cancellation can land here
        yield LlmDone("stop")

    def usage(self) -> Usage:
        return Usage(**vars(self._usage))


def build(options: Options, loaded: LoadedAgent | None) -> ScriptedLLM:
    return ScriptedLLM(load_policy(loaded), options)
