"""Fuzzing the file inputs: agent and gateway YAML (the loader `gateway check-config` and
`gateway serve` use) and WAV headers (`gateway replay`'s input).

Config: the shipped files mutated as text (lines dropped, re-indented, characters inserted,
aliases, tabs, unset ${ENV}) and as data (values swapped for any YAML value, keys dropped or
invented). Each load either succeeds or raises a ConfigError that names the file and a line or
key; nothing else may escape. WAV: a valid file's header bytes overwritten, chunks cut or
lengths lied about; `Replayer.replay_file` (what `gateway replay` runs per file) either replays
it or raises the errors the command reports (exit 1 with the file named), nothing else.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from fuzz_fixtures import count, fuzz_settings, report
from fuzz_http import JSON_VALUE
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from gateway.audio.wav import write_wav
from gateway.config.errors import ConfigError
from gateway.config.loader import load_agent_config, load_gateway_config
from gateway.replay import Replayer, ReplayError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {
    "gateway": (REPO / "config" / "gateway.yaml").read_text(),
    "agent": (REPO / "config" / "agents" / "dental.yaml").read_text(),
}
INSERTS = [
    "\t",
    ":",
    "- ",
    "&a ",
    "*a",
    "*nope",
    "${UNSET_FUZZ_VAR}",
    "${",
    "!!python/object:os.system ",
    "#",
    "{",
    "[",
    "'",
    '"',
    "? ",
    "|",
    ">",
    "%",
    "@",
    "\x00",
    "\ufeff",
    "é",
    "\n  ",
]


@st.composite
def mutated_yaml(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from(["text", "text", "data", "data", "bomb"]))
    if kind == "bomb":  # alias expansion: a "billion laughs" must not eat the machine
        n = draw(st.integers(2, 9))
        lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
        lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, n)]
        return "\n".join(lines) + "\n" + text
    if kind == "data":
        yaml = YAML()
        data = yaml.load(text)
        for _ in range(draw(st.integers(1, 3))):
            node, keys = data, []
            while isinstance(node, dict) and node and draw(st.booleans()):
                key = draw(st.sampled_from(sorted(node, key=str)))
                keys.append(key)
                if not isinstance(node[key], dict):
                    break
                node = node[key]
            target = data
            for key in keys[:-1]:
                target = target[key]
            op = draw(st.sampled_from(["value", "drop", "invent"]))
            if op == "value" and keys:
                target[keys[-1]] = draw(JSON_VALUE)
            elif op == "drop" and keys:
                del target[keys[-1]]
            elif isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=12))] = draw(JSON_VALUE)
        out = io.StringIO()
        yaml.dump(data, out)
        return out.getvalue()
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "indent", "insert", "duplicate", "truncate"]))
        if op == "drop":
            del lines[i]
        elif op == "indent":
            lines[i] = draw(st.sampled_from([" ", "   ", "\t", ""])) + lines[i].lstrip()
        elif op == "insert":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.sampled_from(INSERTS) | st.text(max_size=8)) + lines[i][at:]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        else:
            lines = lines[: i + 1]
        if not lines:
            lines = [""]
    return "\n".join(lines)


def check_config_case(path: Path, kind: str) -> None:
    loader = load_gateway_config if kind == "gateway" else load_agent_config
    try:
        loader(path)
    except ConfigError as err:
        rendered = str(err)
        assert rendered and err.file == str(path), rendered
        assert err.line is not None or err.key_path, rendered  # a line, or at least the key
        if err.line is not None:
            assert 1 <= err.line <= path.read_text(errors="replace").count("\n") + 2, rendered
            assert f"{path}:{err.line}" in rendered, rendered


def fuzz_config(tmp_path: Path, kind: str) -> None:
    target = f"yaml-{kind}"

    @fuzz_settings(80)
    @given(mutated_yaml(SHIPPED[kind]))
    def one(yaml_text: str) -> None:
        count(target)
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml_text, errors="surrogateescape")
        check_config_case(path, kind)

    one()


def test_fuzz_config_files(tmp_path: Path) -> None:
    for kind in SHIPPED:
        fuzz_config(tmp_path, kind)
    report(["yaml-gateway", "yaml-agent"])


def valid_wavs(directory: Path) -> list[bytes]:
    """0.3 s stereo WAVs the replay accepts: 16-bit PCM at 8 kHz, μ-law at 8 kHz, PCM at 16 kHz."""
    out = []
    for name, rate, subtype in (("pcm8", 8000, "PCM_16"), ("ulaw", 8000, "ULAW"), ("pcm16", 16000, "PCM_16")):
        t = np.arange(int(0.3 * rate)) / rate
        x = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        path = directory / f"{name}.wav"
        write_wav(path, np.stack([x, x // 2], axis=1), rate, subtype=subtype)
        out.append(path.read_bytes())
    return out


@st.composite
def mutated_wav(draw: st.DrawFn, wavs: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(wavs)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["field", "field", "bytes", "cut", "chunk"]))
        if op == "field":  # a header field (RIFF size, format tag, channels, rate, block align, bits, sizes)
            at = draw(st.sampled_from([4, 20, 22, 24, 28, 32, 34, 36, 40, 44]))
            width = draw(st.sampled_from([2, 4]))
            value = draw(st.sampled_from([0, 1, 2, 3, 6, 7, 0xFFFE, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            if at + width <= len(data):
                data[at : at + width] = (value & (256**width - 1)).to_bytes(width, "little")
        elif op == "bytes" and data:
            at = draw(st.integers(0, min(80, len(data) - 1)))
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(chunk)] = chunk
        elif op == "cut":
            data = data[: draw(st.integers(0, min(100, len(data))))]
        else:  # an extra chunk with a lying size before the data
            size = draw(st.sampled_from([0, 1, 3, 0xFFFFFFFF, 1_000_000]))
            extra = b"LIST" + struct.pack("<I", size) + draw(st.binary(max_size=8))
            data[12:12] = extra
    return bytes(data)


def test_fuzz_wav_headers(tmp_path: Path) -> None:
    replayer = Replayer(load_agent_config(None).config.turn_handling.to_options())
    wavs = valid_wavs(tmp_path)
    path = tmp_path / "case.wav"
    outcomes = {"replayed": 0, "refused": 0}

    @fuzz_settings(120)
    @given(mutated_wav(wavs))
    def one(data: bytes) -> None:
        count("wav-header")
        path.write_bytes(data)
        try:
            replayer.replay_file(path)
            outcomes["replayed"] += 1
        except (ReplayError, OSError, ValueError) as exc:  # what `gateway replay` reports (exit 1)
            assert str(path) in str(exc), exc  # the message names the file
            outcomes["refused"] += 1

    one()
    report(["wav-header"])
    print(outcomes)
    assert outcomes["refused"] > 0
