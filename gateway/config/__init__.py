"""Operator configuration: YAML agent and gateway files as typed, validated models.

`load_agent_config` / `load_gateway_config` are the entry points; every problem is a
`ConfigError` that names the file, line and key path. See `loader` for the pipeline.

Names are imported lazily so that `gateway --help` (which imports `gateway.config_cli`) does not
load pydantic and ruamel.yaml.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.config.errors import ConfigError, format_key_path
    from gateway.config.loader import (
        LoadedAgent,
        LoadedGateway,
        apply_overrides,
        default_agent_config,
        load_agent_config,
        load_gateway_config,
        parse_agent_yaml,
    )
    from gateway.config.schema import (
        AgentConfig,
        GatewayConfig,
        ProviderConfig,
        ToolConfig,
        TurnHandlingConfig,
    )

_EXPORTS: dict[str, str] = {
    "ConfigError": "errors",
    "format_key_path": "errors",
    "LoadedAgent": "loader",
    "LoadedGateway": "loader",
    "apply_overrides": "loader",
    "default_agent_config": "loader",
    "load_agent_config": "loader",
    "load_gateway_config": "loader",
    "parse_agent_yaml": "loader",
    "AgentConfig": "schema",
    "GatewayConfig": "schema",
    "ProviderConfig": "schema",
    "ToolConfig": "schema",
    "TurnHandlingConfig": "schema",
}

__all__ = [
    "AgentConfig",
    "ConfigError",
    "GatewayConfig",
    "LoadedAgent",
    "LoadedGateway",
    "ProviderConfig",
    "ToolConfig",
    "TurnHandlingConfig",
    "apply_overrides",
    "default_agent_config",
    "format_key_path",
    "load_agent_config",
    "load_gateway_config",
    "parse_agent_yaml",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gateway.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gateway.config.{module}"), name)
    globals()[name] = value
    return value
