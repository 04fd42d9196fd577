"""`gateway check-config`: output, exit codes, kinds, overrides, route checking."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.cli import main


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_valid_agent_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "a.yaml", "agent: dental\nstt: {provider: pocketsphinx}\n")
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (agent dental)\n"
    assert err == ""


def test_invalid_agent_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path / "bad.yaml",
        """
        agent: dental
        turn_handling:
          interruption:
            mode: fast
            threshold: 3
        """,
    )
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:4: turn_handling.interruption.mode: must be one of 'vad' or 'adaptive', got 'fast'",
        f"{path}:5: turn_handling.interruption.threshold: must be <= 1, got 3",
    ]


def test_warnings_go_to_stderr_and_do_not_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "w.yaml", "agent: a\nturn_handling:\n  interruption: {min_words: 2}\n")
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (agent a)\n"
    assert err.startswith(f"{path}:3: turn_handling.interruption.min_words: warning:")


def test_several_files_one_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "good.yaml", "agent: good\n")
    bad = write(tmp_path / "bad.yaml", "agent: bad\nagent: again\n")
    assert main(["check-config", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{good}: ok (agent good)\n"
    assert err.startswith(f"{bad}:2: agent: duplicate key 'agent'")


def test_set_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "a.yaml", "agent: a\n")
    assert (
        main(
            [
                "check-config",
                str(path),
                "--set",
                "interruption.mode=vad",
                "--set",
                "min_endpointing_delay=0.3",
            ]
        )
        == 0
    )
    assert main(["check-config", str(path), "--set", "interruption.threshold=2"]) == 1
    _, err = capsys.readouterr()
    assert err.strip() == (
        f"{path}: --set interruption.threshold=2: turn_handling.interruption.threshold: must be <= 1, got 2"
    )
    assert main(["check-config", str(path), "--set", "interruption.nope=1"]) == 1
    _, err = capsys.readouterr()
    assert "--set interruption.nope=1: unknown key 'nope' under turn_handling.interruption" in err


def test_unset_env_in_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLM_API_KEY", raising=False)
    path = write(
        tmp_path / "a.yaml",
        "agent: a\nllm:\n  provider: openai-compatible\n  model: m\n  api_key: ${LLM_API_KEY}\n",
    )
    assert main(["check-config", str(path)]) == 1
    _, err = capsys.readouterr()
    assert err == f"{path}:5: llm.api_key: environment variable LLM_API_KEY is not set\n"
    monkeypatch.setenv("LLM_API_KEY", "k")
    assert main(["check-config", str(path)]) == 0


def test_gateway_file_is_detected_and_routes_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "agents/dental.yaml", "agent: dental\n")
    gw = write(
        tmp_path / "gateway.yaml",
        """
        sip: {port: 5070}
        routes:
          - {match: dental, agent: agents/dental.yaml}
        default_agent: agents/dental.yaml
        """,
    )
    assert main(["check-config", str(gw)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{gw}: ok (gateway, 1 route)\n"
    assert err == ""


def test_gateway_with_missing_or_broken_agents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "agents/broken.yaml", "agent: b\nturn_handling: {turn_detection: eou}\n")
    gw = write(
        tmp_path / "gateway.yaml",
        """
        routes:
          - {match: a, agent: agents/missing.yaml}
          - {match: b, agent: agents/broken.yaml}
        """,
    )
    assert main(["check-config", str(gw)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"{gw}:2: routes[0].agent: agent file 'agents/missing.yaml' not found")
    assert lines[1].startswith("agents/broken.yaml:2: turn_handling.turn_detection: must be one of")


def test_kind_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Without --kind an empty mapping is taken as an agent file (and lacks `agent`).
    path = write(tmp_path / "empty.yaml", "{}\n")
    assert main(["check-config", str(path)]) == 1
    _, err = capsys.readouterr()
    assert err.strip() == f"{path}:1: agent: required key 'agent' is missing"
    assert main(["check-config", "--kind", "gateway", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (gateway, 0 routes)\n"
    assert "every call is rejected" in err
    gw = write(tmp_path / "gw.yaml", "http: {port: 9000}\n")
    assert main(["check-config", "--kind", "agent", str(gw)]) == 1
    _, err = capsys.readouterr()
    assert f"{gw}:1: http: unknown key 'http'" in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'nope.yaml'}: file not found\n"


def test_example_files_check(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(repo)
    assert main(["check-config", "config/agents/default.yaml"]) == 0
    assert capsys.readouterr().out == "config/agents/default.yaml: ok (agent default)\n"
    monkeypatch.delenv("GATEWAY_DB_URL", raising=False)
    assert main(["check-config", "config/gateway.yaml"]) == 0, capsys.readouterr().err


def test_check_config_validates_backend_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "agent.yaml"
    bad.write_text("agent: x\ntts: {provider: espeak-ng, voize: en-us}\nllm: {provider: telepathy}\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: tts.voize: unknown key for provider 'espeak-ng'" in err
    assert f"{bad}:3: llm.provider: unknown LLM provider 'telepathy'" in err
