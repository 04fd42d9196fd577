"""Validation of a provider's own YAML keys, with errors naming file, line and key.

Each backend declares a pydantic model of its keys (`ProviderOptions` subclass); the registry
validates `ProviderConfig.options` against it before any heavy import, so `check-config`-style
validation stays cheap and a typo names its line:

    config/agents/dental.yaml:7: stt.modle: unknown key for provider 'faster-whisper'; allowed: model, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.config.errors import ConfigError, KeyPath, format_key_path
from gateway.config.loader import LoadedAgent
from gateway.config.schema import _show

M = TypeVar("M", bound=BaseModel)


class ProviderOptions(BaseModel):
    """Base of every provider's options: unknown keys are errors, the model is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def config_error(loaded: LoadedAgent | None, path: KeyPath, message: str) -> ConfigError:
    """A `ConfigError` at `path` of the agent file (or without a file for programmatic configs)."""
    if loaded is not None:
        return loaded.error(path, message)
    return ConfigError(message, key_path=format_key_path(path))


def validate_options(
    model: type[M],
    options: Mapping[str, Any],
    *,
    loaded: LoadedAgent | None,
    section: KeyPath,
    provider: str,
) -> M:
    """`options` checked against `model`; every problem reported at its key under `section`."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        errors = [
            config_error(loaded, (*section, *err["loc"]), _message(err, model, provider))
            for err in exc.errors()
        ]
        raise ConfigError.group(errors) from None


def _message(err: Mapping[str, Any], model: type[BaseModel], provider: str) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(["provider", *model.model_fields]) if len(err["loc"]) == 1 else None
        tail = f"; allowed: {allowed}" if allowed else ""
        return f"unknown key for provider {provider!r}{tail}"
    if kind == "missing":
        return f"required by provider {provider!r}"
    msg = str(err.get("msg", kind)).removeprefix("Value error, ")
    if "input" in err and kind not in ("value_error",):
        return f"{msg}, got {_show(err['input'])}"
    return msg
