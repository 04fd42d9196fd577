"""Agent and gateway YAML: parsing, ${ENV}, validation errors with file/line/key, overrides, warnings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.config import (
    AgentConfig,
    ConfigError,
    apply_overrides,
    default_agent_config,
    load_agent_config,
    load_gateway_config,
    parse_agent_yaml,
)
from gateway.config.yamlsource import parse_yaml, substitute_env
from gateway.turns.options import BackchannelBoundary, TurnHandlingOptions

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(path: Path, overrides: tuple[str, ...] = ()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_agent_config(path, overrides)
    return info.value


def only(err: ConfigError) -> ConfigError:
    assert len(err.errors) == 1, str(err)
    return err.errors[0]


# ---------------------------------------------------------------------------------------------
# YAML source and line marks


def test_source_map_has_a_line_for_every_key_and_item() -> None:
    doc = parse_yaml(
        textwrap.dedent(
            """\
            agent: a
            turn_handling:
              interruption:
                mode: vad
            tools:
              - name: x
                url: http://h
              - {name: y, url: http://h}
            """
        ),
        "f.yaml",
    )
    lines = doc.source.lines
    assert lines[("agent",)] == 1
    assert lines[("turn_handling", "interruption", "mode")] == 4
    assert lines[("tools", 0)] == 6
    assert lines[("tools", 0, "url")] == 7
    assert lines[("tools", 1)] == 8
    assert lines[("tools", 1, "url")] == 8
    # A path that is not in the file falls back to its nearest ancestor.
    assert doc.source.line_of(("turn_handling", "interruption", "threshold")) == 3
    assert doc.data["tools"][1] == {"name": "y", "url": "http://h"}
    assert type(doc.data["turn_handling"]) is dict


def test_duplicate_key_names_file_line_and_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        turn_handling:
          interruption:
            threshold: 0.4
            threshold: 0.6
        """,
    )
    err = only(load_error(path))
    assert err.file == str(path)
    assert err.line == 5
    assert err.key_path == "turn_handling.interruption.threshold"
    assert "duplicate key 'threshold'" in err.message
    assert "line 4" in err.message
    assert str(err).startswith(f"{path}:5: turn_handling.interruption.threshold: duplicate key")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "agent: a\ntools: [\n  {name: x\n")
    err = only(load_error(path))
    assert err.file == str(path)
    assert err.line == 4  # the stream ended inside the flow mapping
    assert "invalid YAML" in err.message
    assert "line 3" in err.message  # where the unclosed mapping started


def test_bad_indentation_is_a_yaml_error_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "agent: a\ngreeting: hi\n  language: en\n")
    err = only(load_error(path))
    assert (err.line, err.message.startswith("invalid YAML")) == (3, True)


def test_missing_file_and_non_mapping_document(tmp_path: Path) -> None:
    err = only(load_error(tmp_path / "nope.yaml"))
    assert err.file == str(tmp_path / "nope.yaml") and err.message == "file not found"
    err = only(load_error(write(tmp_path, "- a\n- b\n")))
    assert err.line == 1 and "must be a mapping" in err.message


def test_multiple_documents_are_rejected(tmp_path: Path) -> None:
    err = only(load_error(write(tmp_path, "agent: a\n---\nagent: b\n")))
    assert "one YAML document" in err.message


# ---------------------------------------------------------------------------------------------
# ${ENV}


def test_env_substitution_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_KEY", "sk-123")
    monkeypatch.setenv("EMPTY_VAR", "")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    path = write(
        tmp_path,
        """
        agent: a
        greeting: "costs $$5, key ${LLM_KEY}, $HOME stays"
        llm:
          provider: openai-compatible
          api_key: ${LLM_KEY}
          base_url: "${UNSET_VAR:-http://localhost:8000/v1}"
          model: "${EMPTY_VAR:-fallback}"
          note: "${UNSET_VAR:-}"
        """,
    )
    cfg = load_agent_config(path).config
    assert cfg.greeting == "costs $5, key sk-123, $HOME stays"
    assert cfg.llm is not None
    assert cfg.llm.options == {
        "api_key": "sk-123",
        "base_url": "http://localhost:8000/v1",
        "model": "fallback",
        "note": "",
    }


def test_env_substitution_happens_before_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRESH", "0.7")
    monkeypatch.delenv("NO_RATE", raising=False)
    path = write(
        tmp_path,
        """
        agent: a
        turn_handling:
          interruption:
            threshold: "${THRESH}"
            enabled: "${NO_SUCH_BOOL:-false}"
          vad:
            sample_rate: "${NO_RATE:-16000}"
        """,
    )
    th = load_agent_config(path).config.turn_handling
    assert th.interruption.threshold == 0.7
    assert th.interruption.enabled is False
    assert th.vad.sample_rate == 16000


def test_unset_env_var_is_an_error_with_line_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_API_KEY", raising=False)
    path = write(
        tmp_path,
        """
        agent: a
        llm:
          provider: openai-compatible
          api_key: "${LLM_API_KEY}"
        """,
    )
    err = only(load_error(path))
    assert str(err) == f"{path}:4: llm.api_key: environment variable LLM_API_KEY is not set"


def test_env_errors_and_validation_errors_come_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_PORT", raising=False)
    path = write(
        tmp_path,
        """
        agent: a
        turn_handling:
          min_endpointing_delay: "${NO_PORT}"
          interruption: {mode: fast}
        """,
    )
    err = load_error(path)
    # The unresolved value is reported once, as the environment problem, not also as "not a number".
    assert [(e.line, e.key_path) for e in err.errors] == [
        (3, "turn_handling.min_endpointing_delay"),
        (4, "turn_handling.interruption.mode"),
    ]
    assert "NO_PORT is not set" in err.errors[0].message


def test_malformed_env_reference_is_an_error() -> None:
    doc = parse_yaml("a: 'x ${1BAD} y'\nb: '${OPEN'\n", "f.yaml")
    with pytest.raises(ConfigError) as info:
        substitute_env(doc.data, doc.source, {})
    assert [(e.line, e.key_path) for e in info.value.errors] == [(1, "a"), (2, "b")]
    assert "$$ for a literal $" in info.value.errors[0].message


def test_env_is_substituted_in_list_items(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = parse_yaml("x: [a, '${V}', {k: '${V}'}]\n", "f.yaml")
    assert substitute_env(doc.data, doc.source, {"V": "v"}) == {"x": ["a", "v", {"k": "v"}]}


# ---------------------------------------------------------------------------------------------
# validation errors


def test_wrong_type_names_line_key_and_got(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        turn_handling:
          min_endpointing_delay: soon
          interruption:
            enabled: maybe
            min_words: 1.5
        """,
    )
    err = load_error(path)
    rendered = str(err).splitlines()
    assert rendered == [
        f"{path}:3: turn_handling.min_endpointing_delay: must be a number, got 'soon'",
        f"{path}:5: turn_handling.interruption.enabled: must be true or false, got 'maybe'",
        f"{path}:6: turn_handling.interruption.min_words: must be a whole number, got 1.5",
    ]
    assert err.file == str(path) and err.line == 3  # the group carries its first problem


def test_bool_is_not_a_number(tmp_path: Path) -> None:
    err = only(load_error(write(tmp_path, "agent: a\nturn_handling: {max_endpointing_delay: true}\n")))
    assert err.message == "must be a number, got true"


def test_unknown_key_lists_allowed_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        turn_handling:
          interruption:
            mode: vad
            min_duraton: 0.3
        """,
    )
    err = only(load_error(path))
    assert err.line == 5
    assert err.key_path == "turn_handling.interruption.min_duraton"
    assert err.message.startswith("unknown key 'min_duraton'; allowed keys: enabled, mode, min_duration,")
    assert "backchannel_boundary" in err.message


def test_unknown_top_level_key_and_tool_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        prompt: hi
        tools:
          - name: book
            url: http://localhost/book
          - name: check
            url: http://localhost/check
            retries: 3
        """,
    )
    err = load_error(path)
    assert [(e.line, e.key_path) for e in err.errors] == [(2, "prompt"), (8, "tools[1].retries")]
    assert "allowed keys: agent, instructions, greeting" in err.errors[0].message
    assert (
        "allowed keys: name, description, parameters, url, method, timeout, headers" in err.errors[1].message
    )


def test_literal_errors_say_what_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "agent: a\nturn_handling:\n  turn_detection: eou\n")
    err = only(load_error(path))
    assert err.message == "must be one of 'vad', 'stt' or 'model', got 'eou'"


@pytest.mark.parametrize(
    ("snippet", "key", "needle"),
    [
        ("interruption: {threshold: 1.5}", "interruption.threshold", "must be <= 1"),
        ("interruption: {threshold: -0.1}", "interruption.threshold", "must be >= 0"),
        ("vad: {activation_threshold: 2}", "vad.activation_threshold", "must be <= 1"),
        ("min_endpointing_delay: -1", "min_endpointing_delay", "must be >= 0"),
        ("interruption: {detector_interval: 0.2}", "interruption.detector_interval", "(0, 0.1]"),
        ("interruption: {detector_interval: 0}", "interruption.detector_interval", "must be > 0"),
        ("interruption: {min_words: -1}", "interruption.min_words", "must be >= 0"),
        ("vad: {sample_rate: 44100}", "vad.sample_rate", "must be 8000 or 16000"),
        ("endpointing: {dynamic_alpha: 0}", "endpointing.dynamic_alpha", "must be > 0"),
        ("endpointing: {mode: learn}", "endpointing.mode", "'fixed' or 'dynamic'"),
        ("interruption: {false_interruption_timeout: -2}", "interruption.false_interruption_timeout", ">= 0"),
    ],
)
def test_out_of_range_values(tmp_path: Path, snippet: str, key: str, needle: str) -> None:
    path = write(tmp_path, f"agent: a\nturn_handling:\n  {snippet}\n")
    err = only(load_error(path))
    assert (err.line, err.key_path) == (3, f"turn_handling.{key}")
    assert needle in err.message


def test_min_above_max_endpointing_delay_points_at_max(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        turn_handling:
          min_endpointing_delay: 2.0
          max_endpointing_delay: 1.0
        """,
    )
    err = only(load_error(path))
    assert (err.line, err.key_path) == (4, "turn_handling.max_endpointing_delay")
    assert err.message == "must be >= min_endpointing_delay (2.0), got 1.0"


def test_deactivation_above_activation(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "agent: a\nturn_handling:\n  vad:\n    activation_threshold: 0.4\n    deactivation_threshold: 0.6\n",
    )
    err = only(load_error(path))
    assert (err.line, err.key_path) == (5, "turn_handling.vad.deactivation_threshold")


def test_missing_required_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        greeting: hi
        stt:
          model: tiny
        tools:
          - name: book
        """,
    )
    err = load_error(path)
    assert [(e.line, e.key_path) for e in err.errors] == [
        (1, "agent"),
        (2, "stt.provider"),
        (5, "tools[0].url"),
    ]
    assert err.errors[0].message == "required key 'agent' is missing"


def test_tool_checks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        tools:
          - name: book appointment
            url: localhost/book
            method: fetch
            parameters: {type: string}
        """,
    )
    err = load_error(path)
    assert [(e.line, e.key_path) for e in err.errors] == [
        (3, "tools[0].name"),
        (4, "tools[0].url"),
        (5, "tools[0].method"),
        (6, "tools[0].parameters"),
    ]
    assert "'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'" in err.errors[2].message


def test_duplicate_tool_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        llm: {provider: scripted}
        tools:
          - {name: book, url: "http://h/a", method: get}
          - {name: book, url: "http://h/b"}
        """,
    )
    err = only(load_error(path))
    assert (err.line, err.key_path) == (5, "tools[1].name")
    assert "duplicate tool name 'book'" in err.message


def test_agent_name_and_language_checks(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "agent: 'my agent'\nlanguage: english\n"))
    assert [(e.line, e.key_path) for e in err.errors] == [(1, "agent"), (2, "language")]


def test_string_fields_reject_numbers(tmp_path: Path) -> None:
    err = only(load_error(write(tmp_path, "agent: a\ngreeting: 12\n")))
    assert err.message == "must be a string, got 12 (quote it)"


# ---------------------------------------------------------------------------------------------
# models


def test_empty_turn_handling_equals_dataclass_defaults() -> None:
    loaded = parse_agent_yaml("agent: a\nturn_handling: {}\n")
    assert loaded.config.turn_handling.to_options() == TurnHandlingOptions()
    assert loaded.warnings == []
    assert default_agent_config().turn_handling.to_options() == TurnHandlingOptions()
    assert default_agent_config().agent == "default"


def test_to_options_carries_every_value() -> None:
    loaded = parse_agent_yaml(
        textwrap.dedent(
            """\
            agent: a
            stt: {provider: x}
            turn_handling:
              turn_detection: stt
              min_endpointing_delay: 0.4
              max_endpointing_delay: 1.5
              endpointing: {mode: dynamic, dynamic_alpha: 0.5}
              interruption:
                enabled: true
                mode: vad
                min_duration: 0.3
                min_words: 2
                false_interruption_timeout: 0.6
                resume_false_interruption: false
                backchannel_lexicon: [Mm-Hmm, " yeah ", mm-hmm]
              vad: {activation_threshold: 0.6, deactivation_threshold: 0.4, sample_rate: 16000,
                    min_speech_duration: 0.1, min_silence_duration: 0.2, prefix_padding_duration: 0.3}
            """
        )
    )
    opts = loaded.config.turn_handling.to_options()
    assert opts.turn_detection == "stt"
    assert (opts.min_endpointing_delay, opts.max_endpointing_delay) == (0.4, 1.5)
    assert (opts.endpointing.mode, opts.endpointing.dynamic_alpha) == ("dynamic", 0.5)
    i = opts.interruption
    assert (i.mode, i.min_duration, i.min_words) == ("vad", 0.3, 2)
    assert (i.false_interruption_timeout, i.resume_false_interruption) == (0.6, False)
    assert i.backchannel_lexicon == ("mm-hmm", "yeah")
    v = opts.vad
    assert (v.activation_threshold, v.deactivation_threshold, v.sample_rate) == (0.6, 0.4, 16000)
    assert (v.min_speech_duration, v.min_silence_duration, v.prefix_padding_duration) == (0.1, 0.2, 0.3)
    assert v.end_threshold == 0.4


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[0.5, 2.0]", BackchannelBoundary(0.5, 2.0)),
        ("1.5", BackchannelBoundary(1.5, 1.5)),
        ("2", BackchannelBoundary(2.0, 2.0)),
        ("null", None),
    ],
)
def test_backchannel_boundary_forms(value: str, expected: BackchannelBoundary | None) -> None:
    cfg = parse_agent_yaml(f"agent: a\nturn_handling:\n  interruption:\n    backchannel_boundary: {value}\n")
    assert cfg.config.turn_handling.to_options().interruption.backchannel_boundary == expected


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("[1, 2, 3]", "must be [start, end]"),
        ("[1, x]", "end must be a number"),
        ("[-1, 2]", "start must be >= 0"),
        ("true", "must be [start, end]"),
        ("{start: 1}", "must be [start, end]"),
    ],
)
def test_backchannel_boundary_errors(value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_agent_yaml(
            f"agent: a\nturn_handling:\n  interruption:\n    backchannel_boundary: {value}\n", "b.yaml"
        )
    err = only(info.value)
    assert (err.file, err.line, err.key_path) == (
        "b.yaml",
        4,
        "turn_handling.interruption.backchannel_boundary",
    )
    assert needle in err.message


def test_provider_keys_are_kept_for_the_backend() -> None:
    cfg = parse_agent_yaml("agent: a\ntts: {provider: espeak-ng, voice: en-us, rate: 170}\n").config
    assert cfg.tts is not None
    assert cfg.tts.provider == "espeak-ng"
    assert cfg.tts.options == {"voice": "en-us", "rate": 170}


def test_backend_can_report_its_own_key_with_a_line() -> None:
    loaded = parse_agent_yaml("agent: a\ntts:\n  provider: espeak-ng\n  voice: klingon\n", "x.yaml")
    err = loaded.error(("tts", "voice"), "unknown voice 'klingon'; voices: en-us, en-gb")
    assert str(err) == "x.yaml:4: tts.voice: unknown voice 'klingon'; voices: en-us, en-gb"


def test_policy_section_is_free_form() -> None:
    cfg = parse_agent_yaml("agent: a\npolicy:\n  intents: [{name: book, examples: [x]}]\n").config
    assert cfg.policy == {"intents": [{"name": "book", "examples": ["x"]}]}


def test_models_are_frozen() -> None:
    cfg = default_agent_config()
    with pytest.raises(Exception, match="frozen"):
        cfg.agent = "other"


# ---------------------------------------------------------------------------------------------
# overrides


def test_overrides_short_and_full_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        turn_handling:
          interruption:
            mode: adaptive
            backchannel_boundary: [1.0, 3.5]
        """,
    )
    loaded = load_agent_config(
        path,
        [
            "interruption.mode=vad",
            "min_endpointing_delay=0.3",
            "turn_handling.max_endpointing_delay=1.0",
            "interruption.backchannel_boundary=[0.5,2.0]",
            "greeting=Hello there",
            "stt.provider=pocketsphinx",
        ],
    )
    cfg = loaded.config
    assert cfg.turn_handling.interruption.mode == "vad"
    assert cfg.turn_handling.min_endpointing_delay == 0.3
    assert cfg.turn_handling.max_endpointing_delay == 1.0
    assert cfg.turn_handling.interruption.backchannel_boundary == (0.5, 2.0)
    assert cfg.greeting == "Hello there"
    assert cfg.stt is not None and cfg.stt.provider == "pocketsphinx"


def test_override_to_null_and_list_index(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        llm: {provider: scripted}
        tools:
          - {name: a, url: "http://h/a"}
          - {name: b, url: "http://h/b"}
        """,
    )
    cfg = load_agent_config(
        path, ["interruption.backchannel_boundary=null", "tools[1].url=http://other/b", "tools.0.timeout=2"]
    ).config
    assert cfg.turn_handling.to_options().interruption.backchannel_boundary is None
    assert cfg.tools[1].url == "http://other/b"
    assert cfg.tools[0].timeout == 2.0


def test_overrides_without_a_file_start_from_defaults() -> None:
    loaded = load_agent_config(None, ["interruption.mode=vad"])
    assert loaded.config.agent == "default"
    assert loaded.path is None
    assert loaded.config.turn_handling.interruption.mode == "vad"


def test_bad_override_value_names_the_override(tmp_path: Path) -> None:
    path = write(tmp_path, "agent: a\nturn_handling:\n  interruption:\n    threshold: 0.4\n")
    err = only(load_error(path, ("interruption.threshold=2",)))
    assert err.override == "interruption.threshold=2"
    assert err.line is None
    assert err.key_path == "turn_handling.interruption.threshold"
    assert str(err) == (
        f"{path}: --set interruption.threshold=2: turn_handling.interruption.threshold: must be <= 1, got 2"
    )


def test_override_replaces_a_file_error(tmp_path: Path) -> None:
    path = write(tmp_path, "agent: a\nturn_handling:\n  interruption:\n    threshold: 7\n")
    assert load_error(path).line == 4
    assert (
        load_agent_config(path, ["interruption.threshold=0.7"]).config.turn_handling.interruption.threshold
        == 0.7
    )


def test_override_does_not_expand_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_X", raising=False)
    cfg = load_agent_config(write(tmp_path, "agent: a\n"), ["greeting=$${NOT_SET_X}"]).config
    assert cfg.greeting == "$${NOT_SET_X}"


def test_errors_in_sections_created_by_an_override_name_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_agent_config(None, ["stt.model=tiny"])
    err = only(info.value)
    assert (err.override, err.key_path) == ("stt.model=tiny", "stt.provider")


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (
            "interruption.mdoe=vad",
            "unknown key 'mdoe' under turn_handling.interruption; allowed keys: enabled, mode",
        ),
        ("colour=red", "unknown key 'colour' at the top level; allowed keys: agent, instructions"),
        ("vad.sample_rate.x=1", "turn_handling.vad.sample_rate is a single value"),
        ("tools[3].url=http://x", "index 3 is out of range"),
        ("tools.name=x", "tools is a list: use an index"),
        ("mode=vad", "unknown key 'mode' at the top level"),
        ("no-equals-sign", "expected key.path=value"),
        ("=1", "expected key.path=value"),
        ("interruption.threshold=[1", "is not valid YAML"),
        ("tools[x].url=1", "invalid key path"),
    ],
)
def test_bad_override_paths(tmp_path: Path, override: str, needle: str) -> None:
    path = write(tmp_path, "agent: a\n")
    err = only(load_error(path, (override,)))
    assert err.override == override
    assert err.line is None
    assert needle in err.message
    assert str(err).startswith(f"--set {override}: ")


def test_several_bad_overrides_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        load_agent_config(None, ["a.b=1", "interruption.c=2"])
    assert [e.override for e in info.value.errors] == ["a.b=1", "interruption.c=2"]


def test_apply_overrides_on_plain_data() -> None:
    data: dict[str, object] = {"agent": "a"}
    origins = apply_overrides(data, ["interruption.min_words=2", "vad.sample_rate=16000"], AgentConfig)
    assert data == {
        "agent": "a",
        "turn_handling": {"interruption": {"min_words": 2}, "vad": {"sample_rate": 16000}},
    }
    assert origins[("turn_handling", "interruption", "min_words")] == "interruption.min_words=2"


def test_gateway_overrides_do_not_take_the_turn_handling_shortcut(tmp_path: Path) -> None:
    path = write(tmp_path, "sip: {port: 5070}\n", "gw.yaml")
    assert load_gateway_config(path, ["sip.port=5080"]).config.sip.port == 5080
    with pytest.raises(ConfigError) as info:
        load_gateway_config(path, ["interruption.mode=vad"])
    assert "allowed keys: database, http, sip, routes, default_agent, limits" in only(info.value).message


# ---------------------------------------------------------------------------------------------
# warnings


def test_warnings_name_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        turn_handling:
          turn_detection: stt
          interruption:
            mode: vad
            min_words: 2
            threshold: 0.8
        """,
    )
    loaded = load_agent_config(path)
    assert loaded.warnings == [
        f"{path}:6: turn_handling.interruption.min_words: warning: min_words needs a transcript, "
        "but there is no stt section: it will be ignored",
        f"{path}:3: turn_handling.turn_detection: warning: turn_detection 'stt' needs an stt provider; "
        "without one it falls back to 'vad'",
        f"{path}:7: turn_handling.interruption.threshold: warning: threshold only applies in adaptive mode "
        "(mode is 'vad')",
    ]


def test_no_warnings_with_an_stt(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        agent: a
        stt: {provider: pocketsphinx}
        turn_handling:
          turn_detection: stt
          interruption: {min_words: 2}
        """,
    )
    assert load_agent_config(path).warnings == []


def test_warning_for_settings_of_disabled_interruptions(tmp_path: Path) -> None:
    path = write(
        tmp_path, "agent: a\nturn_handling:\n  interruption:\n    enabled: false\n    min_duration: 0.2\n"
    )
    (warning,) = load_agent_config(path).warnings
    assert warning.startswith(f"{path}:5: turn_handling.interruption.min_duration: warning: ignored")


def test_warning_from_override_names_it() -> None:
    (warning,) = load_agent_config(None, ["interruption.min_words=3"]).warnings
    assert warning.startswith(
        "--set interruption.min_words=3: turn_handling.interruption.min_words: warning:"
    )


# ---------------------------------------------------------------------------------------------
# gateway file


def test_gateway_defaults_and_routes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        sip:
          port: "${NO_SUCH_SIP_PORT:-5070}"
          codecs: [G722, PCMU]
          allow: [203.0.113.0/24, 10.0.0.1]
        routes:
          - {match: dental, agent: agents/dental.yaml}
          - {match: "+1555*", agent: agents/us.yaml}
        default_agent: agents/default.yaml
        """,
        "gateway.yaml",
    )
    loaded = load_gateway_config(path)
    cfg = loaded.config
    assert cfg.sip.port == 5070
    assert cfg.sip.codecs == ["G722", "PCMU"]
    assert cfg.sip.transports == ["udp", "tcp"]
    assert cfg.sip.calls_per_worker == 4
    assert (cfg.http.host, cfg.http.port) == ("127.0.0.1", 8080)
    assert cfg.database.url == "sqlite:///gateway.db"
    assert cfg.agent_for("Dental") == "agents/dental.yaml"
    assert cfg.agent_for("+15551234") == "agents/us.yaml"
    assert cfg.agent_for("other") == "agents/default.yaml"
    assert loaded.warnings == []


@pytest.mark.parametrize(
    ("snippet", "line", "key", "needle"),
    [
        ("sip:\n  codecs: [PCMU, opus]\n", 2, "sip.codecs[1]", "'PCMU', 'PCMA' or 'G722'"),
        ("sip:\n  codecs: [PCMU, PCMU]\n", 2, "sip.codecs", "more than once"),
        ("sip:\n  calls_per_worker: 8\n", 2, "sip.calls_per_worker", "must be <= 4"),
        ("sip:\n  allow: [10.0.0.300/8]\n", 2, "sip.allow", "CIDR"),
        ("sip:\n  transports: [udp, tls]\n", 2, "sip.transports", "tls section"),
        ("http:\n  port: 70000\n", 2, "http.port", "must be <= 65535"),
        ("routes:\n  - {match: x}\n", 2, "routes[0].agent", "required key 'agent'"),
        ("limits:\n  rtp_timeout: 0\n", 2, "limits.rtp_timeout", "must be > 0"),
        ("sip:\n  auth: {username: u}\n", 2, "sip.auth.password", "required key 'password'"),
        ("sip:\n  tls: {certificate: c.pem, private_key: k.pem}\n", 2, "sip.tls", "'tls' in sip.transports"),
        (
            "sip:\n  transports: [tls]\n  tls:\n    certificate: c.pem\n    private_key: k.pem\n"
            "    port: 5060\n",
            6,
            "sip.tls.port",
            "must differ from sip.port",
        ),
        ("sip:\n  transports: [tls]\n  tls: {certificate: c.pem}\n", 3, "sip.tls.private_key", "required"),
        ("sip:\n  media_address: gw.example.com\n", 2, "sip.media_address", "IP address"),
        ("sip:\n  media_address: 0.0.0.0\n", 2, "sip.media_address", "callers can reach"),
        ("sip:\n  rtp_ports: [30000, 20000]\n", 2, "sip.rtp_ports", "low < high"),
        ("sip:\n  rtp_ports: 30000\n", 2, "sip.rtp_ports", "[low, high]"),
        ("sip:\n  ring_delay: -1\n", 2, "sip.ring_delay", "must be >= 0"),
        ("sip:\n  retry_after: true\n", 2, "sip.retry_after", "must be a number"),
        ("sip:\n  session_timers: {mode: always}\n", 2, "sip.session_timers.mode", "'off'"),
        ("sip:\n  session_timers: {expires: 60}\n", 2, "sip.session_timers.expires", ">= 90"),
        (
            "sip:\n  session_timers:\n    min_se: 600\n    expires: 300\n",
            4,
            "sip.session_timers.expires",
            "must be >= min_se (600)",
        ),
        ("sip:\n  drain_timeout: -5\n", 2, "sip.drain_timeout", "must be >= 0"),
    ],
)
def test_gateway_errors(tmp_path: Path, snippet: str, line: int, key: str, needle: str) -> None:
    path = write(tmp_path, snippet, "gw.yaml")
    with pytest.raises(ConfigError) as info:
        load_gateway_config(path)
    err = only(info.value)
    assert (err.file, err.line, err.key_path) == (str(path), line, key)
    assert needle in err.message


def test_gateway_sip_edge_settings(tmp_path: Path) -> None:
    defaults = load_gateway_config(write(tmp_path, "routes: []\n", "gw0.yaml")).config.sip
    # Defaults are the edge's behaviour before these keys existed.
    assert (defaults.tls, defaults.media_address, defaults.rtp_ports) == (None, None, None)
    assert (defaults.ring_delay, defaults.retry_after, defaults.drain_timeout) == (0.0, 5, 30.0)
    timers = defaults.session_timers
    assert (timers.mode, timers.expires, timers.min_se) == ("optional", 1800, 90)
    path = write(
        tmp_path,
        """
        sip:
          transports: [udp, tls]
          tls: {certificate: cert.pem, private_key: key.pem}
          media_address: 203.0.113.10
          rtp_ports: [30000, 30999]
          ring_delay: 1.5
          retry_after: 30
          session_timers: {mode: off, expires: 600}
          drain_timeout: 10
        routes: []
        """,
        "gw.yaml",
    )
    sip = load_gateway_config(path, ["sip.session_timers.mode=required"]).config.sip
    assert sip.tls is not None and (sip.tls.certificate, sip.tls.port) == ("cert.pem", 5061)
    assert (sip.media_address, sip.rtp_ports) == ("203.0.113.10", (30000, 30999))
    assert (sip.ring_delay, sip.retry_after, sip.drain_timeout) == (1.5, 30, 10.0)
    assert (sip.session_timers.mode, sip.session_timers.expires) == ("required", 600)
    off = load_gateway_config(path).config.sip.session_timers.mode
    assert off == "off"  # YAML 1.2: `off` is a string, not false


def test_gateway_password_is_not_printed(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  auth: {username: u, password: hunter2}\nroutes: []\n", "gw.yaml")
    cfg = load_gateway_config(path).config
    assert cfg.sip.auth is not None
    assert cfg.sip.auth.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)


def test_gateway_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  host: 0.0.0.0\n  workers: 2\n  max_calls: 20\n", "gw.yaml")
    warnings = load_gateway_config(path).warnings
    assert warnings[0].startswith(f"{path}:2: sip.host: warning: listening on 0.0.0.0")
    assert warnings[1].startswith(f"{path}:4: sip.max_calls: warning: 20 exceeds")
    assert "every call is rejected" in warnings[2]


# ---------------------------------------------------------------------------------------------
# the example files


def test_default_agent_example_spells_out_the_defaults() -> None:
    loaded = load_agent_config(REPO / "config/agents/default.yaml")
    assert loaded.config.agent == "default"
    assert loaded.config.turn_handling.to_options() == TurnHandlingOptions()
    assert loaded.config == default_agent_config()
    assert loaded.warnings == []
    # Every turn-handling key is written out (a key missing from the file has no line of its own).
    for section, model in (
        ("interruption", type(loaded.config.turn_handling.interruption)),
        ("vad", type(loaded.config.turn_handling.vad)),
        ("endpointing", type(loaded.config.turn_handling.endpointing)),
    ):
        for key in model.model_fields:
            assert loaded.source.has(("turn_handling", section, key)), f"{section}.{key} not spelled out"


def test_gateway_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_DB_URL", raising=False)
    cfg = load_gateway_config(REPO / "config/gateway.yaml").config
    assert cfg.database.url == "sqlite:///gateway.db"
    assert (cfg.sip.host, cfg.sip.port, cfg.sip.transports) == ("127.0.0.1", 5060, ["udp", "tcp"])
    assert (cfg.http.host, cfg.http.port) == ("127.0.0.1", 8080)
    assert cfg.agent_for("dental") == "config/agents/dental.yaml"
    assert cfg.agent_for("anyone") == "config/agents/default.yaml"
    monkeypatch.setenv("GATEWAY_DB_URL", "postgresql+psycopg://u@db/gw")
    assert (
        load_gateway_config(REPO / "config/gateway.yaml").config.database.url
        == "postgresql+psycopg://u@db/gw"
    )
