"""The scripted dialog: a pure function from the chat history to the next action.

Theory of operation: nothing is remembered between `respond()` calls. The state (filled slots, the
task in progress, tool results) is rebuilt by replaying the history: each user message updates the
slots and may start a task; each tool result is filed under its tool; the result of a task's final
call either completes the task (its confirmation becomes the reply) or, when it is an error, clears
the slots named in `on_error.clear`. Because the history is the state, the policy behaves the same
in a live call, in a test and after the session truncated an interrupted reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.backends.base import ChatMessage
from gateway.backends.llm.policy import PLACEHOLDER, IntentSpec, Policy, ToolStep


@dataclass(frozen=True)
class Reply:
    text: str


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: dict[str, Any]


Action = Reply | Call


def normalise(text: str) -> str:
    """Lower case, punctuation (but not apostrophes or colons between digits) turned into spaces."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"(?<!\d):|:(?!\d)", " ", text)
    return " ".join(re.sub(r"[^\w':]+", " ", text).split())


def spoken(value: Any) -> str:
    """How a template reads a value aloud: lists as "a, b, and c"."""
    if isinstance(value, list | tuple):
        items = [spoken(v) for v in value]
        if len(items) <= 1:
            return "".join(items)
        if len(items) == 2:
            return f"{items[0]} and {items[1]}"
        return ", ".join(items[:-1]) + ", and " + items[-1]
    if isinstance(value, dict):
        return ", ".join(f"{k} {spoken(v)}" for k, v in value.items())
    if value is None:
        return ""
    return str(value)


def is_error(result: Any) -> bool:
    return isinstance(result, dict) and ("error" in result or result.get("ok") is False)


@dataclass
class _State:
    slots: dict[str, str] = field(default_factory=dict)
    task: IntentSpec | None = None
    results: dict[str, tuple[dict[str, Any], Any]] = field(default_factory=dict)
    turn_intent: IntentSpec | None = None
    understood: bool = False
    notice: str | None = None
    calls: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    n_calls: int = 0


class Dialog:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._patterns = {i.name: [re.compile(p) for p in i.patterns] for i in policy.intents}
        self._slot_patterns = {
            name: re.compile(s.pattern) for name, s in policy.slots.items() if s.pattern is not None
        }

    # -- understanding ------------------------------------------------------------------------

    def classify(self, text: str) -> IntentSpec | None:
        norm = normalise(text)
        words = set(norm.split())
        best: tuple[float, IntentSpec] | None = None
        for intent in self.policy.intents:
            score = 0.0
            if any(p.search(norm) for p in self._patterns[intent.name]):
                score = 1.0
            for example in intent.examples:
                ex = normalise(example).split()
                if ex:
                    score = max(score, sum(w in words for w in ex) / len(ex))
            if score >= self.policy.threshold and (best is None or score > best[0]):
                best = (score, intent)
        return None if best is None else best[1]

    def extract(self, text: str) -> dict[str, str]:
        """Slot values mentioned in `text` (for a slot mentioned twice, the later mention)."""
        norm = normalise(text)
        found: dict[str, str] = {}
        for name, spec in self.policy.slots.items():
            best: tuple[int, str] | None = None
            for canonical, synonyms in spec.values.items():
                for phrase in (canonical, *synonyms):
                    p = normalise(phrase)
                    for m in re.finditer(rf"(?<![\w']){re.escape(p)}(?![\w'])", norm):
                        if best is None or m.start() > best[0]:
                            best = (m.start(), canonical)
            if best is not None:
                found[name] = best[1]
            pattern = self._slot_patterns.get(name)
            if pattern is not None:
                hit = pattern.search(norm)
                if hit:
                    value = (
                        hit.group("value") if "value" in pattern.groupindex else hit.group(hit.lastindex or 0)
                    )
                    value = " ".join(value.split())
                    if value:
                        found[name] = value.title() if spec.capitalize else value
        return found

    # -- templates ------------------------------------------------------------------------------

    def render(self, template: str, state: _State, result: Any = None) -> str:
        def value(m: re.Match[str]) -> str:
            path = m.group(1).split(".")
            if path[0] == "result":
                current: Any = result
                for key in path[1:]:
                    current = current.get(key) if isinstance(current, dict) else None
                return spoken(current)
            return state.slots.get(path[0], "")

        return " ".join(PLACEHOLDER.sub(value, template).split())

    def _arguments(self, step: ToolStep, state: _State) -> dict[str, Any]:
        def fill(v: Any) -> Any:
            if isinstance(v, str):
                whole = PLACEHOLDER.fullmatch(v)
                if whole and "." not in whole.group(1):
                    return state.slots.get(whole.group(1), "")
                return self.render(v, state)
            if isinstance(v, dict):
                return {k: fill(x) for k, x in v.items()}
            if isinstance(v, list):
                return [fill(x) for x in v]
            return v

        return {k: fill(v) for k, v in step.arguments.items()}

    # -- the history as state -------------------------------------------------------------------

    def replay(self, messages: Sequence[ChatMessage]) -> _State:
        s = _State()
        for m in messages:
            if m.role == "user":
                slots = self.extract(m.content)
                s.slots.update(slots)
                s.turn_intent = self.classify(m.content)
                s.understood = bool(slots) or s.turn_intent is not None
                s.notice = None
                i = s.turn_intent
                if i is not None and (i.ask or i.call) and s.task is not i:
                    # A new task starts from what this utterance says, not from an earlier task's answers.
                    for step in i.ask:
                        if step.slot not in slots:
                            s.slots.pop(step.slot, None)
                    s.task, s.results = i, {}
            elif m.role == "assistant":
                for call in m.tool_calls:
                    s.calls[call.id] = (call.name, call.arguments)
                    s.n_calls += 1
                if not m.tool_calls and s.task is not None and s.task.call is None and self._filled(s):
                    s.task = None
            elif m.role == "tool":
                name, args = s.calls.get(m.tool_call_id or "", (m.name or "", {}))
                result = _parse(m.content)
                s.results[name] = (args, result)
                self._on_result(s, name, args, result)
        return s

    def _filled(self, s: _State) -> bool:
        return s.task is not None and all(step.slot in s.slots for step in s.task.ask)

    def _on_result(self, s: _State, name: str, args: dict[str, Any], result: Any) -> None:
        task = s.task
        if task is None:
            return
        step_tool = any(step.tool is not None and step.tool.name == name for step in task.ask)
        final = task.call is not None and name == task.call.name and args == self._arguments(task.call, s)
        if not (step_tool or final):
            return
        if is_error(result):
            on_error = task.on_error
            s.notice = self.render(on_error.reply if on_error else self.policy.fallback, s, result)
            for slot in on_error.clear if on_error else ():
                s.slots.pop(slot, None)
            s.results.pop(name, None)
        elif final:
            assert task.reply is not None
            s.notice = self.render(task.reply, s, result)
            s.task, s.results = None, {}

    # -- deciding ---------------------------------------------------------------------------------

    def respond(self, messages: Sequence[ChatMessage]) -> Action:
        s = self.replay(messages)
        last = messages[-1].role if messages else "system"
        if last == "tool" and s.notice is not None:
            return Reply(s.notice)
        intent = s.turn_intent
        if last == "user" and intent is not None and not (intent.ask or intent.call):
            assert intent.reply is not None
            return Reply(self.render(intent.reply, s))
        task = s.task
        if task is None:
            return Reply(self.policy.fallback)
        for step in task.ask:
            if step.slot in s.slots:
                continue
            if step.tool is None:
                return Reply(self.render(step.prompt, s))
            args = self._arguments(step.tool, s)
            done = s.results.get(step.tool.name)
            if done is not None and done[0] == args:
                return Reply(self.render(step.prompt, s, done[1]))
            return Call(f"call_{s.n_calls + 1}", step.tool.name, args)
        if task.call is not None:
            return Call(f"call_{s.n_calls + 1}", task.call.name, self._arguments(task.call, s))
        assert task.reply is not None
        return Reply(self.render(task.reply, s))


def _parse(content: str) -> Any:
    try:
        return json.loads(content)
    except (TypeError, ValueError):
        return content
