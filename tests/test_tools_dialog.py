"""The scripted dental receptionist on a full booking dialog, its tools served by the local service."""

from __future__ import annotations

import json

import pytest

from gateway.agents.tools import ToolRunner
from gateway.backends.base import ChatMessage, LlmDone, TextDelta, ToolCall
from gateway.backends.llm.scripted import ScriptedLLM
from gateway.backends.registry import build_llm
from tests.backend_fixtures import appointment_service, dental_agent

__all__ = ["appointment_service"]


async def turn(llm: ScriptedLLM, runner: ToolRunner, history: list[ChatMessage], said: str) -> str:
    """One caller turn: the LLM's tool calls are run and answered until it speaks."""
    history.append(ChatMessage("user", said))
    for _ in range(5):
        text, calls, done = "", [], None
        async for chunk in llm.chat(history, runner.schemas()):
            if isinstance(chunk, TextDelta):
                text += chunk.text
            elif isinstance(chunk, ToolCall):
                calls.append(chunk)
            else:
                assert isinstance(chunk, LlmDone)
                done = chunk
        assert done is not None
        if not calls:
            assert done.finish_reason == "stop"
            history.append(ChatMessage("assistant", text))
            return text
        assert done.finish_reason == "tool_calls"
        history.append(ChatMessage("assistant", tool_calls=calls))
        for call in calls:
            history.append(ChatMessage("tool", await runner.call(call), tool_call_id=call.id, name=call.name))
    raise AssertionError("the policy kept calling tools")


async def test_booking_dialog(appointment_service) -> None:
    url, book = appointment_service
    loaded = dental_agent(url)
    llm = build_llm(loaded.config.llm, loaded)
    assert isinstance(llm, ScriptedLLM)
    runner = ToolRunner(loaded.config.tools)
    history = [ChatMessage("system", loaded.config.instructions)]
    try:
        assert await turn(llm, runner, history, "hello") == "Hello! How can I help you today?"
        assert await turn(llm, runner, history, "I'd like to book an appointment") == (
            "Of course. Which day would suit you?"
        )
        reply = await turn(llm, runner, history, "Tuesday")
        assert (
            reply == "We have Tuesday at nine, Tuesday at eleven, and Wednesday at two. Which would you like?"
        )
        tool_msgs = [m for m in history if m.role == "tool"]
        assert json.loads(tool_msgs[0].content)["date"] == "Tuesday"
        assert await turn(llm, runner, history, "actually wait") == "Of course, take your time."
        reply = await turn(llm, runner, history, "Tuesday at nine please")
        assert reply == "Tuesday at nine. May I have your name, please?"
        reply = await turn(llm, runner, history, "my name is john smith")
        assert reply == (
            "Thank you, John Smith. You're booked for Tuesday at nine. Your reference is BSD-0001."
        )
        assert book.booked == {("Tuesday", 9): "John Smith"}
        # A second booking of the same slot is refused and the time asked again.
        assert (
            await turn(llm, runner, history, "book an appointment") == "Of course. Which day would suit you?"
        )
        reply = await turn(llm, runner, history, "Tuesday at nine")
        assert reply == "Tuesday at nine. May I have your name, please?"
        reply = await turn(llm, runner, history, "my name is mary jones")
        assert reply == "Sorry, Tuesday at nine was just taken. Which other time would suit you?"
        reply = await turn(llm, runner, history, "what")  # not understood: the open question again
        assert (
            reply == "We have Tuesday at eleven, Wednesday at two, and Thursday at ten. Which would you like?"
        )
        reply = await turn(llm, runner, history, "eleven")
        assert reply.startswith("Thank you, Mary Jones. You're booked for Tuesday at eleven.")
        assert await turn(llm, runner, history, "blue sky") != ""
    finally:
        await runner.aclose()


async def test_fallback_and_tool_down() -> None:
    loaded = dental_agent("http://127.0.0.1:9")  # nothing listens on the discard port
    llm = build_llm(loaded.config.llm, loaded)
    runner = ToolRunner(loaded.config.tools)
    history: list[ChatMessage] = []
    try:
        assert (await turn(llm, runner, history, "the weather is nice")).startswith("Sorry, I didn't catch")
        await turn(llm, runner, history, "book an appointment")
        reply = await turn(llm, runner, history, "friday")
        error = json.loads(history[-2].content)["error"]
        assert "could not be reached" in error
        assert reply.startswith("Sorry, check_availability could not be reached")
    finally:
        await runner.aclose()


@pytest.mark.parametrize("words", [1, 3])
async def test_reply_streams_in_deltas(words: int) -> None:
    loaded = dental_agent("http://127.0.0.1:9")
    from gateway.config.schema import ProviderConfig

    llm = build_llm(ProviderConfig(provider="scripted", words_per_delta=words), loaded)
    deltas = [c.text async for c in llm.chat([ChatMessage("user", "hello")]) if isinstance(c, TextDelta)]
    assert "".join(deltas) == "Hello! How can I help you today?"
    assert len(deltas) == -(-7 // words)  # 7 words
