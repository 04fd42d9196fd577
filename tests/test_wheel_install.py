"""The wheel works outside the checkout: built, installed into a fresh virtualenv, run elsewhere.

The fresh venv gets the gateway from the wheel only; its dependencies come from the test
environment's site-packages (a `.pth` line: no download), and `pip install --no-index` still
checks that they satisfy what the wheel declares. Every command runs in a directory with no
`config/`, `models/` or `migrations/`, so whatever it needs must come from the package's data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import espeak, place

from gateway.audio.wav import read_wav, write_wav

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@dataclass
class Installed:
    bin: Path
    cwd: Path  # a directory outside the checkout, with nothing in it but what a test writes

    @property
    def env(self) -> dict[str, str]:
        """This environment, minus what would point Python back to the checkout's venv."""
        return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
        return result

    def example_agent(self, name: str) -> Path:
        """An agent file of the installed package's examples."""
        code = f"from gateway.config.examples import example_agent; print(example_agent({name!r}))"
        return Path(self.run("python", "-c", code).stdout.strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("voice_gateway-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The dependencies, already installed here (the directory only: its .pth files, among them the
    # editable install of this checkout, are not read).
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    yield Installed(venv / "bin", elsewhere)


def test_the_package_comes_from_the_wheel(installed: Installed) -> None:
    where = installed.run("python", "-c", "import gateway; print(gateway.__file__)").stdout.strip()
    assert Path(where).is_relative_to(installed.bin.parent) and not Path(where).is_relative_to(REPO)
    version = installed.run("gateway", "--version").stdout.strip()
    assert version == f"gateway {_repo_version()}"


def test_check_config_and_db_upgrade(installed: Installed) -> None:
    dental = installed.example_agent("dental")
    assert installed.run("gateway", "check-config", str(dental)).returncode == 0
    gateway_file = installed.cwd / "gateway.yaml"
    gateway_file.write_text(f"routes:\n  - match: dental\n    agent: {dental}\ndefault_agent: {dental}\n")
    assert installed.run("gateway", "check-config", str(gateway_file)).returncode == 0
    bad = installed.cwd / "bad.yaml"
    bad.write_text("sip:\n  port: -1\n")
    result = installed.run("gateway", "check-config", str(bad), check=False)
    assert result.returncode != 0 and f"{bad}:2" in result.stdout + result.stderr
    # the migrations are package data too
    installed.run("gateway", "db", "upgrade", "--db", f"sqlite:///{installed.cwd / 'gateway.db'}")
    assert (installed.cwd / "gateway.db").stat().st_size > 0


def test_replay_a_generated_recording(installed: Installed) -> None:
    rate = 8000
    caller = place(4.0, [(1.0, espeak("hello, I would like an appointment", rate=rate))], rate=rate)
    wav = installed.cwd / "call.wav"
    write_wav(wav, np.stack([caller, np.zeros_like(caller)], axis=1), rate)
    # the ONNX barge-in detector's model is package data
    result = installed.run("gateway", "replay", "call.wav", "--set", "interruption.detector=onnx")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows and all(row["file"] == "call.wav" for row in rows)
    starts = [row["t"] for row in rows if row["type"] == "user_speech_start"]
    assert starts and abs(starts[0] - 1.0) < 0.3


def _repo_version() -> str:
    namespace: dict[str, str] = {}
    exec((REPO / "gateway" / "__init__.py").read_text(), namespace)
    return namespace["__version__"]


def test_serve_and_call(installed: Installed) -> None:
    """`gateway serve` (Kamailio template, migrations, models and the dental agent all from the
    package) answers `gateway call`, and stops cleanly when its process group gets SIGTERM."""
    from sip_fixtures import kill_group

    from gateway.edges.sip.ports import free_port

    db = f"sqlite:///{installed.cwd / 'serve.db'}"
    installed.run("gateway", "db", "upgrade", "--db", db)
    dental = installed.example_agent("dental")
    (installed.cwd / "serve.yaml").write_text(f"routes:\n  - match: dental\n    agent: {dental}\n")
    port = free_port()
    serve = subprocess.Popen(
        [str(installed.bin / "gateway"), "-v", "serve", "--config", "serve.yaml", "--db", db,
         "--sip-port", str(port), "--http-port", "0", "--workers", "1", "--set", "sip.rate_limit=null",
         "--drain-timeout", "3"],
        cwd=installed.cwd, env=installed.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None and serve.stdout.readline().startswith(b"SERVING"), serve.stderr
        rate = 8000
        write_wav(installed.cwd / "caller.wav", place(3.0, [], rate=rate), rate)
        result = installed.run(
            "gateway", "call", "--to", f"sip:dental@127.0.0.1:{port}", "--play", "caller.wav",
            "--record", "agent.wav", "--duration", "3",
        )  # fmt: skip
        call = json.loads(result.stdout)
        assert call["answered"] and call["recorded_frames"] > 100
        os.killpg(serve.pid, signal.SIGTERM)
        assert serve.wait(30) == 0
    finally:
        kill_group(serve)
    assert serve.stderr is not None
    log = serve.stderr.read().decode(errors="replace")
    agent = read_wav(installed.cwd / "agent.wav").pcm
    assert np.abs(agent.astype(np.int32)).max() > 1000, log[-4000:]  # the dental agent's greeting
    assert " ERROR " not in log and "has exited" not in log  # the database process too stopped cleanly
