"""CallSession: one call, from transport frames to the agent's voice and back.

Data path per inbound 20 ms frame (the call's clock):

1. take the next 20 ms of agent audio from the Playout and send it to the transport (so the
   playout position is exactly what left for the caller, frame by frame);
2. tell the TurnPipeline when agent audio starts/stops being audible, then feed it the caller frame
   with the agent frame beside it (VAD, barge-in and end-of-turn detectors, TurnEngine);
3. feed the same caller frame to the STT stream;
4. act on the engine's decisions: pause / resume / stop playout, start a reply on end of turn,
   hand VAD-segmented utterances to batch STT engines, record metrics.

Replies run as a task: LLM text is cut into sentences as it streams, each sentence is synthesised
and appended to the reply's Speech in the Playout, tool calls go to the ToolRunner. An interruption
that is confirmed cancels that task and truncates the assistant message in the chat context to the
words the caller actually heard (marked interrupted). Backend failures never end the call: the
agent says a short fallback line instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from gateway.agents.playout import Playout, Speech
from gateway.agents.sentences import SentenceSplitter
from gateway.audio.frames import Pcm
from gateway.backends.base import (
    LLM,
    STT,
    TTS,
    BackendError,
    ChatMessage,
    SttStream,
    TextDelta,
    ToolCall,
    ToolSchema,
    within_deadlines,
)
from gateway.calls import CallEnded, CallObserver, CallTransport, Dtmf, InboundFrame, TurnTiming
from gateway.config.schema import AgentConfig
from gateway.turns.detectors import BargeInDetector, EndOfTurnDetector
from gateway.turns.events import (
    EndOfTurn,
    Event,
    Interruption,
    PausePlayout,
    ResumePlayout,
    StopPlayout,
    UserSpeechEnd,
)
from gateway.turns.lexical import ThreadedLexicalRunner, shared_checker
from gateway.turns.options import TurnHandlingOptions
from gateway.turns.pipeline import TurnPipeline
from gateway.turns.silero import SileroModel
from gateway.turns.vad import VadStream

log = logging.getLogger(__name__)

FALLBACK_LINE = "Sorry, I'm having trouble right now. Could you say that again?"
# The fallback line as each TTS voice says it, made once per process (agent, TTS, rate): a TTS that
# hangs can still be apologised for.
_FALLBACK_AUDIO: dict[tuple[str, str, int], Pcm] = {}
MAX_TOOL_ROUNDS = 4


class Tools(Protocol):
    def schemas(self) -> list[ToolSchema]: ...

    async def call(self, call: ToolCall) -> str: ...


class Recorder(Protocol):
    def on_events(self, events: Sequence[Event], *, agent_text_heard: str | None = None) -> None: ...

    def on_dtmf(self, t: float, digit: str, method: str = "") -> None: ...

    def turn_latencies(
        self,
        *,
        stt_final_latency_ms: float | None = None,
        llm_ttft_ms: float | None = None,
        tts_first_audio_ms: float | None = None,
        response_latency_ms: float | None = None,
    ) -> None: ...


@dataclass
class Backends:
    stt: STT | None = None
    llm: LLM | None = None
    tts: TTS | None = None
    tools: Tools | None = None


@dataclass
class Detectors:
    """Models shared by all calls of a process (stateless; each call opens its own streams)."""

    vad: SileroModel
    bargein: BargeInDetector | None = None
    end_of_turn: EndOfTurnDetector | None = None


@dataclass
class _Reply:
    speech: Speech
    message: ChatMessage
    task: asyncio.Task[None] | None = None
    eot_t: float | None = None  # call time of the end of turn that asked for it
    eou_delay_ms: float | None = None  # caller's last voiced audio -> end of turn
    stt_latency: float | None = None  # VAD end of speech -> final transcript
    first_audio_t: float | None = None
    llm_ttft: float | None = None
    tts_first_audio: float | None = None


def _lexical_runner(options: TurnHandlingOptions) -> ThreadedLexicalRunner | None:
    """Lexical checks decode in the process's worker thread (the decoder loads there on first use,
    so no frame of any call waits for it; verdicts come back through the pipeline every frame)."""
    check = options.interruption.lexical_check
    if not check.enabled:
        return None
    return ThreadedLexicalRunner(shared_checker(options.interruption.backchannel_lexicon, check.commands))


class CallSession:
    def __init__(
        self,
        transport: CallTransport,
        agent: AgentConfig,
        detectors: Detectors,
        backends: Backends | None = None,
        *,
        recorder: Recorder | None = None,
        observer: CallObserver | None = None,
        on_event: Callable[[Event], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.agent = agent
        self.backends = backends or Backends()
        self.rate = transport.info.sample_rate
        options = agent.turn_handling.to_options()
        options = replace(options, vad=replace(options.vad, sample_rate=self.rate))
        bargein = detectors.bargein if options.interruption.mode == "adaptive" else None
        self.pipeline = TurnPipeline(
            options,
            VadStream(detectors.vad, self.rate),
            bargein=bargein,
            end_of_turn=detectors.end_of_turn if options.turn_detection == "model" else None,
            has_stt=self.backends.stt is not None,
            lexical=_lexical_runner(options) if bargein is not None else None,
        )
        self.playout = Playout(self.rate)
        self.messages: list[ChatMessage] = []
        if agent.instructions:
            self.messages.append(ChatMessage("system", agent.instructions))
        self.log = observer if observer is not None else CallObserver()
        self.recorder = recorder
        self._on_event = on_event
        self._monotonic = monotonic
        self._stt: SttStream | None = None
        self._stt_task: asyncio.Task[None] | None = None
        self._reply: _Reply | None = None
        self._audible = False
        self._new_agent_turn = True
        self._stt_latency: float | None = None
        self.end_reason = ""
        self.dtmf: list[str] = []  # keys the caller pressed, in order
        self.deadlines = agent.deadlines
        self._stt_waiting_since: float | None = None  # call time the caller stopped, no STT result since
        self._words_awaited = 0  # spans handed to a batch STT, their result not back yet
        self.stt_restarts = 0
        self._background: set[asyncio.Task[None]] = set()

    # -- the call loop --------------------------------------------------------------------------

    async def run(self) -> str:
        if self.backends.stt is not None:
            self._open_stt()
        if self.agent.greeting:
            self._start_reply(None, text=self.agent.greeting)
        try:
            async for event in self.transport.events():
                if isinstance(event, InboundFrame):
                    self._on_frame(event)
                elif isinstance(event, Dtmf):
                    self._on_dtmf(event)
                elif isinstance(event, CallEnded):
                    self.end_reason = event.reason
                    break
        finally:
            await self._close()
            self.log.close()
        return self.end_reason

    def _open_stt(self) -> None:
        assert self.backends.stt is not None
        self._stt = self.backends.stt.stream(sample_rate=self.rate, language=self.agent.language)
        self._stt_task = asyncio.create_task(self._consume_transcripts(self._stt))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _check_stt(self) -> None:
        """A streaming STT that says nothing for `deadlines.stt_result` after the caller stopped
        talking is hung: open a new stream, apologise, go on."""
        since = self._stt_waiting_since
        if since is None or self.pipeline.t - since < self.deadlines.stt_result:
            return
        self._stt_waiting_since = None
        self.stt_restarts += 1
        log.warning(
            "call %s: STT gave no result %.1f s after the caller stopped: restarting it",
            self.transport.info.call_id,
            self.deadlines.stt_result,
        )
        old, old_task = self._stt, self._stt_task
        self._open_stt()
        if old_task is not None:
            old_task.cancel()
        if old is not None:
            self._spawn(_close_quietly(old))
        self._start_reply(None, text=FALLBACK_LINE)

    def _on_frame(self, frame: InboundFrame) -> None:
        events: list[Event] = []
        agent_frame = self.playout.next_frame()
        if agent_frame is not None:
            if not self._audible:
                events += self.pipeline.agent_speech_start(new_turn=self._new_agent_turn)
                self._audible, self._new_agent_turn = True, False
                self._note_first_audio()
            self.transport.play(agent_frame)
        elif self._audible and not self.playout.paused:
            events += self.pipeline.agent_speech_end()
            self._audible = False
            self._complete_reply_if_played()
        self.playout.edge_delay = self.transport.unheard_seconds()
        events += self.pipeline.process_frame(frame.pcm, agent_frame)
        if self._stt is not None:
            self._stt.push(frame.pcm)
            self._check_stt()
        self._act(events)

    def _on_dtmf(self, dtmf: Dtmf) -> None:
        """A key the caller pressed: the call's timeline, its record, and the agent's context (the
        next LLM request sees `[keypad] 5` as the caller's words)."""
        log.info(
            "call %s: DTMF %s at %.2f s%s",
            self.transport.info.call_id,
            dtmf.digit,
            dtmf.t,
            f" ({dtmf.method})" if dtmf.method else "",
        )
        self.dtmf.append(dtmf.digit)
        self.log.on_dtmf(dtmf)
        if self.recorder is not None:
            self.recorder.on_dtmf(dtmf.t, dtmf.digit, dtmf.method)
        if self.backends.llm is not None:
            self.messages.append(ChatMessage("user", f"[keypad] {dtmf.digit}"))

    def _act(self, events: list[Event]) -> None:
        heard: str | None = None
        for event in events:
            if isinstance(event, Interruption):
                heard = self.playout.heard_text()
            elif isinstance(event, PausePlayout):
                self.playout.pause()
                self.transport.clear()
            elif isinstance(event, ResumePlayout):
                self.playout.resume()
            elif isinstance(event, StopPlayout):
                heard = self._stop_reply(event.reason)
            elif isinstance(event, UserSpeechEnd) and self._stt is not None:
                self._stt.end_of_speech(event.t - event.duration, event.t)
                stt = self.backends.stt
                if stt is not None and not stt.capabilities.streaming:  # one final result per span
                    self._words_awaited += 1
                    self.pipeline.engine.words_awaited(self._words_awaited)
                if self._stt_waiting_since is None and stt is not None and stt.capabilities.streaming:
                    self._stt_waiting_since = event.t  # local batch engines are slow, never hung
            elif isinstance(event, EndOfTurn):
                self._start_reply(event)
        self.log.on_events(events)
        if self.recorder is not None and events:
            self.recorder.on_events(events, agent_text_heard=heard)
        if self._on_event is not None:
            for event in events:
                self._on_event(event)

    async def _consume_transcripts(self, stream: SttStream) -> None:
        failures = 0
        while failures < 5:
            try:
                async for result in stream.results():
                    self._stt_waiting_since = None  # the STT is alive
                    if result.final and result.end_of_utterance:
                        self._batch_result_back()
                    if result.final and result.words:
                        self.log.on_transcript(self.pipeline.t, result.text)
                        self._stt_latency = result.latency
                    self._act(
                        self.pipeline.transcript(
                            list(result.words), final=result.final, end_of_utterance=result.end_of_utterance
                        )
                    )
                return
            except BackendError as exc:  # one utterance lost; the stream carries on
                self._batch_result_back()
                failures += 1
                log.warning("STT failed on an utterance (%d): %s", failures, exc)
        log.warning("STT keeps failing; the call goes on without transcripts")

    def _batch_result_back(self) -> None:
        stt = self.backends.stt
        if self._words_awaited and stt is not None and not stt.capabilities.streaming:
            self._words_awaited -= 1
            self.pipeline.engine.words_awaited(self._words_awaited)

    async def _close(self) -> None:
        if self._reply and self._reply.task:
            self._reply.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reply.task
        if self._stt is not None:
            await self._stt.aclose()
        if self._stt_task is not None:
            self._stt_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stt_task
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- replies --------------------------------------------------------------------------------

    def _start_reply(self, eot: EndOfTurn | None, *, text: str | None = None) -> None:
        if self._reply is not None and self._reply.task and not self._reply.task.done():
            self._stop_reply("new_turn")
        if eot is not None:
            self.messages.append(ChatMessage("user", eot.transcript or ""))
        speech = self.playout.new_speech()
        message = ChatMessage("assistant", "")
        reply = _Reply(
            speech=speech,
            message=message,
            eot_t=eot.t if eot else None,
            eou_delay_ms=eot.delay_ms if eot else None,
            stt_latency=self._stt_latency,
        )
        self._stt_latency = None
        self._reply = reply
        self._new_agent_turn = True
        reply.task = asyncio.create_task(self._generate(reply, text))

    async def _generate(self, reply: _Reply, fixed_text: str | None) -> None:
        started = self._monotonic()
        try:
            if fixed_text is not None:
                await self._say(reply, fixed_text, started)
            elif self.backends.llm is not None:
                await self._converse(reply, self.backends.llm, started)
        except BackendError as exc:
            log.warning("call %s: backend failed during a reply: %s", self.transport.info.call_id, exc)
            await self._say_fallback(reply, started)
        finally:
            self.playout.finish(reply.speech)
            tts = self.backends.tts
            if tts is not None and self._fallback_key(tts) not in _FALLBACK_AUDIO and not self._background:
                self._spawn(self._prepare_fallback(tts))  # after a reply: never ahead of one
            if (reply.message.content or reply.message.tool_calls) and reply.message not in self.messages:
                self.messages.append(reply.message)

    async def _converse(self, reply: _Reply, llm: LLM, started: float) -> None:
        tools = self.backends.tools
        schemas = tools.schemas() if tools else []
        for _ in range(MAX_TOOL_ROUNDS):
            splitter = SentenceSplitter()
            calls: list[ToolCall] = []
            d = self.deadlines
            answer = within_deadlines(
                llm.chat(self._context(), schemas),
                f"LLM {llm.name}",
                first=d.llm_first_token,
                total=d.llm_total,
            )
            async for chunk in answer:
                if isinstance(chunk, TextDelta):
                    if reply.llm_ttft is None:
                        reply.llm_ttft = self._monotonic() - started
                    for sentence in splitter.push(chunk.text):
                        await self._say(reply, sentence, started)
                elif isinstance(chunk, ToolCall):
                    calls.append(chunk)
            for sentence in splitter.flush():
                await self._say(reply, sentence, started)
            if not calls or tools is None:
                return
            self.messages.append(ChatMessage("assistant", "", tool_calls=calls))
            for call in calls:
                result = await tools.call(call)
                self.messages.append(ChatMessage("tool", result, tool_call_id=call.id, name=call.name))

    def _context(self) -> list[ChatMessage]:
        return list(self.messages)

    async def _say(self, reply: _Reply, text: str, started: float) -> None:
        reply.message.content = f"{reply.message.content} {text}".strip()
        self.log.on_agent_said(self.pipeline.t, text)
        tts = self.backends.tts
        if tts is None:
            return
        offset = 0.0
        first = True
        d = self.deadlines
        audio = within_deadlines(
            tts.synthesize(text, sample_rate=self.rate),
            f"TTS {tts.name}",
            first=d.tts_first_audio,
            total=d.tts_total,
        )
        async for chunk in audio:
            if reply.tts_first_audio is None:
                reply.tts_first_audio = self._monotonic() - started
            words = [replace(w, start=w.start - offset, end=w.end - offset) for w in chunk.words]
            self.playout.append(reply.speech, chunk.pcm, words, text=text if first else "")
            first = False
            offset += len(chunk.pcm) / chunk.sample_rate

    def _fallback_key(self, tts: TTS) -> tuple[str, str, int]:
        return (self.agent.agent, tts.name, self.rate)

    async def _prepare_fallback(self, tts: TTS) -> None:
        """Synthesise the fallback line once per process (agent and voice), after the first reply."""
        key = self._fallback_key(tts)
        if key in _FALLBACK_AUDIO:
            return
        parts: list[Pcm] = []
        try:
            d = self.deadlines
            audio = within_deadlines(
                tts.synthesize(FALLBACK_LINE, sample_rate=self.rate),
                "TTS",
                first=d.tts_first_audio,
                total=d.tts_total,
            )
            async for chunk in audio:
                parts.append(chunk.pcm)
        except BackendError as exc:
            log.warning("cannot prepare the fallback line: %s", exc)
            return
        if parts and key not in _FALLBACK_AUDIO:
            _FALLBACK_AUDIO[key] = np.concatenate(parts).astype(np.int16)

    async def _say_fallback(self, reply: _Reply, started: float) -> None:
        """The fallback line: from the TTS, else as it said it before (a hung TTS), else in text only."""
        tts = self.backends.tts
        try:
            await self._say(reply, FALLBACK_LINE, started)
            return
        except BackendError as exc:
            log.warning("call %s: TTS failed on the fallback line: %s", self.transport.info.call_id, exc)
        pcm = _FALLBACK_AUDIO.get(self._fallback_key(tts)) if tts is not None else None
        if pcm is not None:
            self.playout.append(reply.speech, pcm, [], text=FALLBACK_LINE)

    def _stop_reply(self, reason: str) -> str:
        """Cut the current reply: stop audio, cancel generation, keep only what was heard."""
        reply = self._reply
        self.playout.edge_delay = self.transport.unheard_seconds()
        heard = self.playout.heard_text(reply.speech if reply else None)
        self.playout.clear()
        self.transport.clear()
        self._audible = False
        if reply is not None:
            if reply.task and not reply.task.done():
                reply.task.cancel()
            reply.message.content = heard
            reply.message.interrupted = True
            if reply.message not in self.messages:
                self.messages.append(reply.message)
            self._reply = None
        log.info("agent stopped (%s); the caller heard: %r", reason, heard)
        return heard

    def _note_first_audio(self) -> None:
        reply = self._reply
        if reply is None or reply.first_audio_t is not None:
            return
        reply.first_audio_t = self.pipeline.t
        if reply.eot_t is None or reply.eou_delay_ms is None:
            return  # the greeting: no caller turn to measure from
        timing = TurnTiming(
            eou_delay_ms=reply.eou_delay_ms,
            stt_final_latency_ms=None if reply.stt_latency is None else reply.stt_latency * 1000,
            llm_ttft_ms=None if reply.llm_ttft is None else reply.llm_ttft * 1000,
            tts_first_audio_ms=None if reply.tts_first_audio is None else reply.tts_first_audio * 1000,
            response_ms=(reply.first_audio_t - reply.eot_t) * 1000,
        )
        self.log.on_turn_timing(timing)
        if self.recorder is not None:
            self.recorder.turn_latencies(
                stt_final_latency_ms=timing.stt_final_latency_ms,
                llm_ttft_ms=timing.llm_ttft_ms,
                tts_first_audio_ms=timing.tts_first_audio_ms,
                response_latency_ms=timing.response_ms,
            )

    def _complete_reply_if_played(self) -> None:
        reply = self._reply
        if reply is not None and reply.speech.finished:
            self._reply = None


async def _close_quietly(stream: SttStream) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(stream.aclose(), 10)
