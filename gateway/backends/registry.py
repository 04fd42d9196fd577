"""Backends chosen by name in the agent YAML: `stt: {provider: NAME, ...}` and so on.

    stt = build_stt(loaded.config.stt, loaded)

Each provider lives in its own module with an `Options` model (its YAML keys) and a
`build(options, loaded)` function. The registry imports that module only when the provider is
used, validates the keys first (cheap, no model loading), then builds. `validate_agent(loaded)`
runs only the validation, for every section of an agent file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, cast

from gateway.backends.base import LLM, STT, TTS
from gateway.backends.options import ProviderOptions, config_error, validate_options
from gateway.config.errors import ConfigError
from gateway.config.loader import LoadedAgent
from gateway.config.schema import ProviderConfig

Kind = Literal["stt", "llm", "tts"]

# provider name -> module (which defines `Options` and `build`)
PROVIDERS: dict[Kind, dict[str, str]] = {
    "stt": {
        "faster-whisper": "gateway.backends.stt.whisper",
        "pocketsphinx": "gateway.backends.stt.pocketsphinx",
        "deepgram": "gateway.backends.stt.deepgram",
    },
    "llm": {
        "scripted": "gateway.backends.llm.scripted",
        "openai-compatible": "gateway.backends.llm.openai_compatible",
    },
    "tts": {
        "piper": "gateway.backends.tts.piper",
        "espeak-ng": "gateway.backends.tts.espeak",
        "openai-tts": "gateway.backends.tts.openai",
    },
}
# Providers whose libraries are optional extras of the package (heavy, or GPL-licensed).
EXTRAS = {"faster-whisper": "whisper", "piper": "piper", "deepgram": "deepgram"}


@dataclass(frozen=True)
class _Provider:
    module: ModuleType
    options: ProviderOptions


def _resolve(kind: Kind, cfg: ProviderConfig, loaded: LoadedAgent | None) -> _Provider:
    names = PROVIDERS[kind]
    path = names.get(cfg.provider)
    if path is None:
        raise config_error(
            loaded,
            (kind, "provider"),
            f"unknown {kind.upper()} provider {cfg.provider!r}; one of: {', '.join(names)}",
        )
    module = importlib.import_module(path)
    options = validate_options(
        module.Options, cfg.options, loaded=loaded, section=(kind,), provider=cfg.provider
    )
    check = getattr(module, "check", None)
    if check is not None:
        check(options, loaded)
    return _Provider(module, options)


def _build(kind: Kind, cfg: ProviderConfig, loaded: LoadedAgent | None) -> Any:
    provider = _resolve(kind, cfg, loaded)
    try:
        return provider.module.build(provider.options, loaded)
    except ImportError as exc:
        extra = EXTRAS.get(cfg.provider)
        if extra is None:
            raise
        raise config_error(
            loaded,
            (kind, "provider"),
            f"provider {cfg.provider!r} needs {exc.name or exc}, which is not installed: "
            f"pip install 'voice-gateway[{extra}]'",
        ) from exc


def build_stt(cfg: ProviderConfig, loaded: LoadedAgent | None = None) -> STT:
    return cast(STT, _build("stt", cfg, loaded))


def build_llm(cfg: ProviderConfig, loaded: LoadedAgent | None = None) -> LLM:
    return cast(LLM, _build("llm", cfg, loaded))


def build_tts(cfg: ProviderConfig, loaded: LoadedAgent | None = None) -> TTS:
    return cast(TTS, _build("tts", cfg, loaded))


def validate_agent(loaded: LoadedAgent) -> None:
    """Check the provider keys (and the scripted policy) of every backend section without building."""
    errors: list[ConfigError] = []
    for kind in ("stt", "llm", "tts"):
        cfg = getattr(loaded.config, kind)
        if cfg is None:
            continue
        try:
            _resolve(kind, cfg, loaded)
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise ConfigError.group(errors)
