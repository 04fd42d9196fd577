"""The `policy:` section of an agent file: the dialog of the `scripted` LLM.

    policy:
      fallback: Sorry, I can check availability and book appointments. What would you like?
      slots:
        day:  {values: {Monday: [monday], Tuesday: [tuesday, tue]}}      # canonical: synonyms
        name: {pattern: "my name is (?P<value>[a-z]+(?: [a-z]+)?)", capitalize: true}
      intents:
        - name: hello
          examples: [hello, hi there]
          reply: Hello! How can I help you today?
        - name: book
          examples: [book an appointment, make an appointment]
          ask:                                     # slots the task needs, asked in order
            - {slot: day, prompt: Sure. Which day would suit you?}
            - slot: time
              tool: {name: check_availability, arguments: {date: "{day}"}}   # run before asking
              prompt: "We have {result.slots}. Which time would you like?"
          call: {name: book_appointment, arguments: {date: "{day}", time: "{time}"}}
          reply: "You're booked for {result.day} at {result.time}."
          on_error: {reply: "Sorry, {result.error}", clear: [time]}

Matching works on normalised text (lower case, punctuation removed): an intent matches when one of
its `patterns` (regular expressions) is found, or when at least `threshold` of the words of one of
its `examples` occur in the utterance; the best score wins, ties go to the intent listed first.
Slot values are picked up from every utterance. Templates use `{slot}` and, after a tool call,
`{result.key}` (lists are read out as "a, b, and c").
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError(
            "regex", "is not a valid regular expression: {err}", {"err": str(exc)}
        ) from None
    return value


class SlotSpec(_Model):
    # canonical value (as spoken back) -> words or phrases that mean it
    values: dict[str, list[str]] = Field(default_factory=dict)
    # a regular expression on the normalised text; the value is group "value" (or group 1, or all)
    pattern: str | None = None
    capitalize: bool = False

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        return None if v is None else _regex(v)

    @model_validator(mode="after")
    def _one(self) -> SlotSpec:
        if not self.values and self.pattern is None:
            raise PydanticCustomError("slot", "a slot needs values or a pattern", {})
        return self


class ToolStep(_Model):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class AskStep(_Model):
    slot: str
    prompt: str
    tool: ToolStep | None = None


class OnError(_Model):
    reply: str
    clear: list[str] = Field(default_factory=list)


class IntentSpec(_Model):
    name: str
    examples: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    reply: str | None = None
    ask: list[AskStep] = Field(default_factory=list)
    call: ToolStep | None = None
    on_error: OnError | None = None

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        return [_regex(p) for p in v]

    @model_validator(mode="after")
    def _shape(self) -> IntentSpec:
        if not self.examples and not self.patterns:
            raise PydanticCustomError("intent", "an intent needs examples or patterns", {})
        if self.reply is None and not self.ask and self.call is None:
            raise PydanticCustomError("intent", "an intent needs a reply, ask steps or a call", {})
        if self.call is not None and self.reply is None:
            raise PydanticCustomError("intent", "an intent with a call needs a reply (the confirmation)", {})
        return self


class Policy(_Model):
    fallback: str = "Sorry, I didn't catch that."
    threshold: float = Field(default=0.75, gt=0, le=1)
    slots: dict[str, SlotSpec] = Field(default_factory=dict)
    intents: list[IntentSpec] = Field(default_factory=list)
