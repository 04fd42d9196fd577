"""`gateway front` and `gateway serve --role node` on the command line: node addresses, the rendered
dispatcher configuration (accepted by `kamailio -c`), and the refusals a node gives before it starts."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.front_cli import parse_node

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.11", ("10.0.0.11", 5060)),
        ("10.0.0.11:5070", ("10.0.0.11", 5070)),
        ("node-1.example.org", ("node-1.example.org", 5060)),
        ("[2001:db8::1]:5062", ("[2001:db8::1]", 5062)),
        ("2001:db8::1", ("[2001:db8::1]", 5060)),
    ],
)
def test_node_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_node(value) == expected


@pytest.mark.parametrize("value", ["10.0.0.11:0", "10.0.0.11:x", "a b", 'evil";', "[2001:db8::1]5060", ""])
def test_bad_node_addresses_are_refused(value: str) -> None:
    with pytest.raises((argparse.ArgumentTypeError, ValueError)):
        parse_node(value)


def _gateway(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )


def test_printed_configuration_lists_the_nodes_and_passes_kamailio(tmp_path: Path) -> None:
    result = _gateway(
        "front", "--node", "10.0.0.11", "--node", "10.0.0.12:5070", "--allow", "192.0.2.0/24",
        "--invites-per-second", "10", "--run-dir", str(tmp_path), "--print-config", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = result.stdout
    assert "WITH_ALLOW" in config and "WITH_PIKE" in config and "192.0.2.0/24" in config
    listing = result.stderr.split(":\n", 1)[1]
    assert listing == "1 sip:10.0.0.11:5060;transport=udp\n1 sip:10.0.0.12:5070;transport=udp\n"
    (tmp_path / "kamailio.cfg").write_text(config)
    (tmp_path / "dispatcher.list").write_text(listing)
    kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
    check = subprocess.run(
        [kamailio, "-c", "-f", str(tmp_path / "kamailio.cfg")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_node_needs_postgresql(tmp_path: Path) -> None:
    result = _gateway("serve", "--role", "node", "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "--role node needs a PostgreSQL database" in result.stderr


def test_a_node_needs_the_metrics_database(tmp_path: Path) -> None:
    result = _gateway(
        "serve", "--role", "node", "--session", "tests.sip_fixtures:recording_session", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "needs the metrics database" in result.stderr
