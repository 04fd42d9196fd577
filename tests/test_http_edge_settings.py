"""Gateway file -> HTTP edge settings: the `webrtc:` and `mediastream:` sections, their errors
(file, line, key), and the environment variables they fall back to."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from aiohttp import web

from gateway.config import ConfigError, load_gateway_config
from gateway.config.schema import GatewayConfig
from gateway.edges.mediastream import MEDIASTREAM_EDGE, MediaStreamSettings
from gateway.edges.webrtc import WEBRTC_EDGE, IceServer, WebRtcSettings
from gateway.edges.webrtc.ice import restrict_host_addresses
from gateway.runtime import EdgeUnavailable, GatewayRuntime

REPO = Path(__file__).resolve().parent.parent

ENV_NAMES = (
    "GATEWAY_ICE_SERVERS",
    "GATEWAY_WEBRTC_ADDRESSES",
    "GATEWAY_WEBRTC_AGENT",
    "GATEWAY_MEDIA_SECRET",
    "TWILIO_AUTH_TOKEN",
    "GATEWAY_PUBLIC_URL",
    "GATEWAY_MEDIA_AGENT",
)

FULL = """
http:
  host: 0.0.0.0
webrtc:
  ice_servers:
    - urls: stun:stun.example.org:3478
    - urls: [turn:turn.example.org:3478, turns:turn.example.org:5349]
      username: gw
      credential: "${TEST_TURN_PASSWORD}"
  addresses: [192.0.2.10, "2001:db8::10"]
  agent: softphone
mediastream:
  secret: s3cret
  twilio_auth_token: "${TEST_TWILIO_TOKEN}"
  public_url: https://gw.example.com/
  agent: carrier
routes: []
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> GatewayConfig:
    return load_gateway_config(write(tmp_path, text)).config


def test_yaml_values_reach_the_edge_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TURN_PASSWORD", "turnpw")
    monkeypatch.setenv("TEST_TWILIO_TOKEN", "twtoken")
    # The file wins over the environment variables it replaces.
    monkeypatch.setenv("GATEWAY_MEDIA_SECRET", "from-env")
    monkeypatch.setenv("GATEWAY_WEBRTC_ADDRESSES", "10.0.0.1")
    config = load(tmp_path, FULL)

    rtc = WebRtcSettings.from_config(config)
    assert rtc.ice_servers == [
        IceServer(["stun:stun.example.org:3478"]),
        IceServer(["turn:turn.example.org:3478", "turns:turn.example.org:5349"], "gw", "turnpw"),
    ]
    assert rtc.addresses == ["192.0.2.10", "2001:db8::10"]
    assert rtc.agent == "softphone"
    # Keys the file does not have keep the settings class's defaults.
    assert (rtc.codecs, rtc.connect_timeout) == (WebRtcSettings().codecs, WebRtcSettings().connect_timeout)

    media = MediaStreamSettings.from_config(config)
    assert (media.secret, media.twilio_auth_token) == ("s3cret", "twtoken")
    assert media.public_url == "https://gw.example.com"
    assert media.agent == "carrier"
    assert media.token_ttl == MediaStreamSettings().token_ttl

    # Secrets stay out of reprs of the loaded config.
    for secret in ("turnpw", "twtoken", "s3cret"):
        assert secret not in repr(config)


def test_the_runtime_installs_the_edges_from_the_gateway_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_TURN_PASSWORD", "turnpw")
    monkeypatch.setenv("TEST_TWILIO_TOKEN", "twtoken")
    runtime = GatewayRuntime(load(tmp_path, FULL), "sqlite://")
    app = web.Application()
    try:
        runtime.install_http_edges(app)
    finally:
        restrict_host_addresses([])
    assert app[WEBRTC_EDGE].settings == WebRtcSettings.from_config(runtime.config)
    assert app[WEBRTC_EDGE].settings.agent == "softphone"
    assert app[MEDIASTREAM_EDGE].settings.secret == "s3cret"
    assert app[MEDIASTREAM_EDGE].settings.public_url == "https://gw.example.com"
    assert app[WEBRTC_EDGE].sessions is runtime.runner is app[MEDIASTREAM_EDGE].sessions


def test_disabled_edges_are_not_installed(tmp_path: Path) -> None:
    text = "webrtc:\n  enabled: false\nmediastream:\n  enabled: false\n"
    runtime = GatewayRuntime(load(tmp_path, text), "sqlite://")
    app = web.Application()
    runtime.install_http_edges(app)
    assert WEBRTC_EDGE not in app and MEDIASTREAM_EDGE not in app
    assert not [r for r in app.router.routes() if r.method != "HEAD"]


def test_an_edge_that_cannot_be_imported_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing optional dependency (here: the WebRTC edge's aiortc) names the edge and the way out,
    instead of serving silently without it."""
    import gateway.edges

    monkeypatch.delattr(gateway.edges, "webrtc")
    monkeypatch.setitem(sys.modules, "gateway.edges.webrtc", None)  # what a failed import leaves
    runtime = GatewayRuntime(load(tmp_path, "webrtc: {}\n"), "sqlite://")
    with pytest.raises(EdgeUnavailable, match=r"the webrtc edge cannot start: .*webrtc\.enabled: false"):
        runtime.install_http_edges(web.Application())


def set_env(monkeypatch: pytest.MonkeyPatch, *values: str) -> None:
    """Every edge environment variable, in the order of ENV_NAMES."""
    for name, value in zip(ENV_NAMES, values, strict=True):
        monkeypatch.setenv(name, value)


def test_env_fallback_without_a_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(
        monkeypatch,
        '[{"urls": "stun:env.example.org", "username": "u"}]',
        "192.0.2.1, 192.0.2.2",
        "env-rtc",
        "env-secret",
        "env-token",
        "https://env.example.com/",
        "env-media",
    )
    config = load(tmp_path, "routes: []\n")
    assert WebRtcSettings.from_config(config) == WebRtcSettings.from_env()
    assert MediaStreamSettings.from_config(config) == MediaStreamSettings.from_env()
    rtc = WebRtcSettings.from_config(config)
    assert rtc.ice_servers == [IceServer(["stun:env.example.org"], "u", None)]
    assert (rtc.addresses, rtc.agent) == (["192.0.2.1", "192.0.2.2"], "env-rtc")
    media = MediaStreamSettings.from_config(config)
    assert (media.secret, media.twilio_auth_token) == ("env-secret", "env-token")
    assert (media.public_url, media.agent) == ("https://env.example.com", "env-media")


def test_null_and_empty_keys_fall_back_per_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_WEBRTC_AGENT", "env-rtc")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "env-token")
    config = load(
        tmp_path,
        """
        webrtc: {ice_servers: [{urls: "stun:a.example.org"}], addresses: null, agent: ""}
        mediastream: {secret: yaml-secret, twilio_auth_token: ""}
        """,
    )
    rtc = WebRtcSettings.from_config(config)
    assert rtc.ice_servers == [IceServer(["stun:a.example.org"])]
    assert (rtc.addresses, rtc.agent) == (["127.0.0.1"], "env-rtc")  # http.host is loopback
    media = MediaStreamSettings.from_config(config)
    assert (media.secret, media.twilio_auth_token) == ("yaml-secret", "env-token")


def test_no_values_anywhere_gives_the_settings_defaults(tmp_path: Path) -> None:
    loopback = WebRtcSettings.from_config(load(tmp_path, "routes: []\n"))
    assert loopback == WebRtcSettings(addresses=["127.0.0.1"])
    public = WebRtcSettings.from_config(load(tmp_path, "http: {host: 0.0.0.0}\n"))
    assert public == WebRtcSettings()
    # An explicit empty list means every interface even on loopback.
    assert WebRtcSettings.from_config(load(tmp_path, "webrtc: {addresses: []}\n")).addresses == []
    assert MediaStreamSettings.from_config(load(tmp_path, "routes: []\n")) == MediaStreamSettings()


def test_shipped_gateway_yaml_keeps_env_deployments_working(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_DB_URL", raising=False)
    config = load_gateway_config(REPO / "config/gateway.yaml").config
    assert WebRtcSettings.from_config(config) == WebRtcSettings.from_env(http_host=config.http.host)
    assert MediaStreamSettings.from_config(config) == MediaStreamSettings()
    set_env(
        monkeypatch,
        '[{"urls": ["turn:t.example.org"], "credential": "c"}]',
        "192.0.2.7",
        "rtc",
        "sec",
        "tok",
        "https://gw.example.com",
        "media",
    )
    config = load_gateway_config(REPO / "config/gateway.yaml").config
    assert WebRtcSettings.from_config(config) == WebRtcSettings.from_env(http_host=config.http.host)
    assert MediaStreamSettings.from_config(config) == MediaStreamSettings.from_env()
    assert MediaStreamSettings.from_config(config).secret == "sec"


@pytest.mark.parametrize(
    ("snippet", "line", "key", "needle"),
    [
        ("webrtc:\n  ice_servers: stun:x.example.org\n", 2, "webrtc.ice_servers", "must be a list"),
        ("webrtc:\n  ice_servers:\n    - urls: 3478\n", 3, "webrtc.ice_servers[0].urls", "must be a list"),
        (
            "webrtc:\n  ice_servers:\n    - urls: [stun:a.example.org, http://b]\n",
            3,
            "webrtc.ice_servers[0].urls",
            "stun:, stuns:, turn: or turns:",
        ),
        ("webrtc:\n  ice_servers:\n    - {username: u}\n", 3, "webrtc.ice_servers[0].urls", "required"),
        (
            "webrtc:\n  ice_servers:\n    - {urls: stun:a, password: p}\n",
            3,
            "webrtc.ice_servers[0].password",
            "unknown key 'password'",
        ),
        ("webrtc:\n  addresses: 192.0.2.1\n", 2, "webrtc.addresses", "must be a list"),
        ("webrtc:\n  addresses: [gw.example.com]\n", 2, "webrtc.addresses", "IP addresses"),
        ("webrtc:\n  agent: 5\n", 2, "webrtc.agent", "must be a string"),
        ("webrtc:\n  stun: x\n", 2, "webrtc.stun", "allowed keys: enabled, ice_servers, addresses, agent"),
        ("mediastream:\n  secret: 1234\n", 2, "mediastream.secret", "must be a string"),
        ("mediastream:\n  twilio_auth_token: [a]\n", 2, "mediastream.twilio_auth_token", "must be a string"),
        ("mediastream:\n  public_url: gw.example.com\n", 2, "mediastream.public_url", "https://"),
        ("mediastream:\n  agent: true\n", 2, "mediastream.agent", "must be a string"),
        ("routes: []\nmediastream: [secret]\n", 2, "mediastream", "must be a mapping"),
    ],
)
def test_bad_values_name_file_line_and_key(
    tmp_path: Path, snippet: str, line: int, key: str, needle: str
) -> None:
    path = write(tmp_path, snippet)
    with pytest.raises(ConfigError) as info:
        load_gateway_config(path)
    assert len(info.value.errors) == 1, str(info.value)
    err = info.value.errors[0]
    assert (err.file, err.line, err.key_path) == (str(path), line, key)
    assert needle in err.message
    assert f"{path}:{line}" in str(err)


def test_overrides_reach_the_new_sections() -> None:
    config = load_gateway_config(
        None, ["webrtc.addresses=[192.0.2.5]", "mediastream.public_url=https://o.example.com"]
    ).config
    assert WebRtcSettings.from_config(config, env={}).addresses == ["192.0.2.5"]
    assert MediaStreamSettings.from_config(config, env={}).public_url == "https://o.example.com"
