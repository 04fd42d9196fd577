"""The registry: providers by name, each validating its own keys with file:line:key errors."""

from __future__ import annotations

import pytest

from gateway.backends.registry import PROVIDERS, build_llm, build_stt, build_tts, validate_agent
from gateway.config.errors import ConfigError
from gateway.config.loader import parse_agent_yaml
from tests.backend_fixtures import DENTAL

AGENT = """\
agent: t
stt: {provider: faster-whisper, beam_size: 0}
llm:
  provider: openai-compatible
  model: m
  base_url: http://127.0.0.1:1/v1
  temprature: 0.2
tts: {provider: espeak-ng, voice: en-us}
"""


def test_unknown_keys_and_bad_values_name_their_lines() -> None:
    loaded = parse_agent_yaml(AGENT, "a.yaml")
    with pytest.raises(ConfigError) as err:
        validate_agent(loaded)
    lines = str(err.value).splitlines()
    assert lines[0].startswith("a.yaml:2: stt.beam_size: ")
    assert "greater than or equal to 1" in lines[0]
    assert lines[1].startswith("a.yaml:7: llm.temprature: unknown key for provider 'openai-compatible'")
    assert "temperature" in lines[1]  # the allowed keys are listed


def test_unknown_provider() -> None:
    loaded = parse_agent_yaml("agent: t\ntts: {provider: festival}\n", "b.yaml")
    with pytest.raises(ConfigError) as err:
        build_tts(loaded.config.tts, loaded)  # type: ignore[arg-type]
    assert str(err.value) == (
        "b.yaml:2: tts.provider: unknown TTS provider 'festival'; one of: " + ", ".join(PROVIDERS["tts"])
    )


def test_missing_required_key() -> None:
    loaded = parse_agent_yaml("agent: t\nstt:\n  provider: deepgram\n", "c.yaml")
    with pytest.raises(ConfigError) as err:
        build_stt(loaded.config.stt, loaded)  # type: ignore[arg-type]
    assert str(err.value) == "c.yaml:2: stt.api_key: required by provider 'deepgram'"


POLICY = """\
agent: t
llm: {provider: scripted}
tools:
  - {name: lookup, url: "http://127.0.0.1:1/x"}
policy:
  slots:
    day: {values: {Monday: [monday]}}
  intents:
    - name: a
      examples: [hi]
      reply: "Hi {dya}"
    - name: b
      examples: [book]
      ask: [{slot: day, prompt: "Which day?"}]
      call: {name: lokup, arguments: {d: "{day}"}}
      reply: "Done {result.ok}"
    - name: c
      examples: [x]
      colour: red
"""


def test_policy_errors_name_their_lines() -> None:
    loaded = parse_agent_yaml(POLICY, "p.yaml")
    with pytest.raises(ConfigError) as err:
        build_llm(loaded.config.llm, loaded)  # type: ignore[arg-type]
    assert str(err.value) == "p.yaml:19: policy.intents[2].colour: unknown key"
    fixed = POLICY.replace("      colour: red\n", "      reply: ok\n")
    loaded = parse_agent_yaml(fixed, "p.yaml")
    with pytest.raises(ConfigError) as err:
        build_llm(loaded.config.llm, loaded)  # type: ignore[arg-type]
    assert str(err.value).splitlines() == [
        "p.yaml:11: policy.intents[0].reply: unknown slot 'dya'; declared: day",
        "p.yaml:15: policy.intents[1].call.name: unknown tool 'lokup'; declared under tools: lookup",
    ]


def test_scripted_needs_a_policy() -> None:
    loaded = parse_agent_yaml("agent: t\nllm: {provider: scripted}\n", "d.yaml")
    with pytest.raises(ConfigError, match=r"d.yaml:2: llm.provider: the scripted LLM needs a policy"):
        build_llm(loaded.config.llm, loaded)  # type: ignore[arg-type]


def test_dental_agent_validates() -> None:
    from gateway.config.loader import load_agent_config

    loaded = load_agent_config(DENTAL)
    validate_agent(loaded)
    assert loaded.config.stt is not None and loaded.config.stt.provider == "pocketsphinx"
