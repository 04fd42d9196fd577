"""TLS at the Kamailio front: a call over TLS (pjsua2 test caller) and the config checks around it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sip_fixtures import REPO, SPEECH_RMS, caller_wav, gateway_call, gateway_serve, wav_activity

from gateway.edges.sip.kamailio import FrontOptions, module_dir, render_config
from gateway.edges.sip.ports import free_port


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 and its key, made with the openssl CLI."""
    cert, key = directory / "sip.crt", directory / "sip.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def tls_config(directory: Path, cert: Path, key: Path, tls_port: int, transports: str = "udp, tls") -> Path:
    path = directory / "gateway.yaml"
    path.write_text(
        "sip:\n"
        f"  transports: [{transports}]\n"
        "  tls:\n"
        f"    certificate: {cert}\n"
        f"    private_key: {key}\n"
        f"    port: {tls_port}\n"
    )
    return path


def test_front_config_with_tls(tmp_path: Path) -> None:
    opts = FrontOptions(
        port=5090, tcp=False, tls_port=5091, tls_certificate="/etc/c.pem", tls_private_key="/etc/k.pem"
    )
    text = render_config(opts, tmp_path / "ds.list", "/mods")
    assert "#!define WITH_TLS" in text and "#!define WITH_TCP" not in text
    assert "{{" not in text
    assert 'modparam("tls", "certificate", "/etc/c.pem")' in text
    assert 'modparam("tls", "private_key", "/etc/k.pem")' in text
    # The listener itself is inside #!ifdef WITH_TLS; without it no TLS module is loaded.
    assert "listen=tls:127.0.0.1:5091" in text
    plain = render_config(FrontOptions(port=5090), tmp_path / "ds.list", "/mods")
    assert "#!define WITH_TLS" not in plain
    with pytest.raises(ValueError, match="certificate and a private key"):
        render_config(FrontOptions(tls_port=5061), tmp_path / "ds.list", "/mods")
    with pytest.raises(ValueError, match="quotes"):
        render_config(
            FrontOptions(tls_port=5061, tls_certificate='/x"y', tls_private_key="/k"), tmp_path / "d", "/m"
        )


@pytest.mark.parametrize("tcp", [False, True])
def test_kamailio_accepts_the_tls_config(tmp_path: Path, tcp: bool) -> None:
    # kamailio and kamailio-tls-modules come from scripts/apt-packages.txt: missing is a failure
    modules = module_dir()
    assert Path(modules, "tls.so").exists(), "kamailio-tls-modules is not installed"
    cert, key = self_signed(tmp_path)
    (tmp_path / "ds.list").write_text("1 sip:127.0.0.1:5999;transport=udp\n")
    opts = FrontOptions(
        port=5098, tcp=tcp, tls_port=5099, tls_certificate=str(cert), tls_private_key=str(key)
    )
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(render_config(opts, tmp_path / "ds.list", modules))
    check = subprocess.run(["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def serve_error(*args: str) -> subprocess.CompletedProcess[str]:
    """`gateway serve` that must refuse its configuration before starting anything."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--session",
            "tests.sip_fixtures:recording_session",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_names_the_missing_or_bad_tls_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    missing = tls_config(tmp_path, tmp_path / "nope.crt", key, 5061)
    res = serve_error("--config", str(missing))
    assert res.returncode == 2
    assert f"{missing}:4: sip.tls.certificate: cannot read {tmp_path / 'nope.crt'}" in res.stderr
    swapped = tls_config(tmp_path, key, cert, 5061)  # the key where the certificate belongs, and back
    res = serve_error("--config", str(swapped))
    assert res.returncode == 2
    assert f"{swapped}:4: sip.tls.certificate: {key} holds no PEM certificate" in res.stderr
    assert f"{swapped}:5: sip.tls.private_key: {cert} holds no PEM private key" in res.stderr
    res = serve_error("--config", str(missing), "--set", "sip.tls=null")
    assert res.returncode == 2 and "sip.transports: 'tls' needs a tls section" in res.stderr


@pytest.mark.slow
def test_call_over_tls(tmp_path: Path) -> None:
    assert Path(module_dir(), "tls.so").exists(), "kamailio-tls-modules is not installed"
    cert, key = self_signed(tmp_path)
    tls_port = free_port()
    config = tls_config(tmp_path, cert, key, tls_port)
    caller_wav(tmp_path / "caller.wav")  # 600 Hz "speech" from 1.0 to 2.0 s
    with gateway_serve(tmp_path, "--config", str(config), env={"SIP_TEST_GREETING": "1000:1.5"}) as gw:
        assert f"TLS on {tls_port}" in (tmp_path / "serve.err").read_text()
        summary = gateway_call(
            "--to", f"sip:dental@127.0.0.1:{tls_port}", "--transport", "tls", "--codec", "PCMU",
            "--play", str(tmp_path / "caller.wav"), "--record", str(tmp_path / "agent.wav"),
            "--duration", "2.5",
        )  # fmt: skip
        (call,) = gw.results(1)
    assert summary["answered"] and summary["codec"] == "PCMU" and summary["ended_by"] == "caller"
    assert call["reason"] == "caller_hangup"  # the BYE came over TLS through the front
    # Caller audio reached the session at the right time ...
    speech = [t for t, rms, f in call["frames"] if rms > SPEECH_RMS and abs(f - 600) < 60]
    assert speech and 0.9 <= speech[0] <= 1.2 and len(speech) >= 40
    # ... and the agent's greeting reached the caller.
    heard = [
        t for t, rms, f in wav_activity(tmp_path / "agent.wav") if rms > SPEECH_RMS and abs(f - 1000) < 60
    ]
    assert len(heard) >= 60 and heard[0] <= 0.2
