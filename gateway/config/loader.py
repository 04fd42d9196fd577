"""Load agent and gateway files: YAML -> overrides -> ${ENV} -> validation -> warnings.

    loaded = load_agent_config("config/agents/dental.yaml", ["interruption.mode=vad"])
    options = loaded.config.turn_handling.to_options()

Every problem is a `ConfigError` naming the file, line and key path (or the `--set` override that
produced the value); all problems of one file are raised together. Warnings (settings that are
valid but will not do what the operator may expect) come back as rendered strings.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gateway.config.errors import ConfigError, KeyPath, format_key_path, format_location
from gateway.config.schema import AgentConfig, GatewayConfig, TurnHandlingConfig, _show
from gateway.config.yamlsource import SourceMap, load_yaml_file, parse_yaml, substitute_env_collect

Kind = Literal["agent", "gateway"]
M = TypeVar("M", bound=BaseModel)
GATEWAY_KEYS = frozenset(GatewayConfig.model_fields)


@dataclass
class Origins:
    """Where the values of one loaded document came from: file lines, or `--set` overrides."""

    source: SourceMap
    # key path -> override text, for values set (or sections created) by an override.
    overrides: dict[KeyPath, str] = field(default_factory=dict)

    def locate(self, path: KeyPath) -> tuple[int | None, str | None]:
        """(line, override) of `path`: the nearest enclosing value that an override or the file gave."""
        for n in range(len(path), -1, -1):
            prefix = path[:n]
            if prefix in self.overrides:
                return None, self.overrides[prefix]
            if prefix in self.source.lines:
                return self.source.lines[prefix], None
        return None, None

    def error(self, path: KeyPath, message: str) -> ConfigError:
        line, override = self.locate(path)
        return ConfigError(
            message, file=self.source.file, line=line, key_path=format_key_path(path), override=override
        )

    def warning(self, path: KeyPath, message: str) -> str:
        line, override = self.locate(path)
        loc = format_location(self.source.file, line, override)
        return ": ".join(p for p in (loc, format_key_path(path), f"warning: {message}") if p)


@dataclass
class LoadedAgent:
    config: AgentConfig
    warnings: list[str]
    path: Path | None
    origins: Origins

    @property
    def source(self) -> SourceMap:
        return self.origins.source

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """A `ConfigError` at `path` of this file, e.g. for a backend rejecting one of its keys."""
        return self.origins.error(path, message)


@dataclass
class LoadedGateway:
    config: GatewayConfig
    warnings: list[str]
    path: Path | None
    origins: Origins

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return self.origins.error(path, message)


# ---------------------------------------------------------------------------------------------
# public entry points


def default_agent_config() -> AgentConfig:
    """An agent with every default (name "default"): what `gateway replay` uses without --config."""
    return AgentConfig(agent="default")


def load_agent_config(path: str | Path | None, overrides: Sequence[str] = ()) -> LoadedAgent:
    """Load an agent file; `path=None` starts from `default_agent_config()` (overrides still apply)."""
    config, origins = _load(path, AgentConfig, {"agent": "default"}, overrides)
    where = None if path is None else Path(path)
    return LoadedAgent(config, agent_warnings(config, origins), where, origins)


def load_gateway_config(path: str | Path | None, overrides: Sequence[str] = ()) -> LoadedGateway:
    """Load the gateway file; `path=None` gives the embedded defaults (overrides still apply)."""
    config, origins = _load(path, GatewayConfig, {}, overrides)
    where = None if path is None else Path(path)
    return LoadedGateway(config, gateway_warnings(config, origins), where, origins)


def parse_agent_yaml(text: str, file: str = "<string>", overrides: Sequence[str] = ()) -> LoadedAgent:
    """Like `load_agent_config` for YAML text (tests, embedded examples)."""
    doc = parse_yaml(text, file)
    config, origins = _build(doc.data, doc.source, AgentConfig, overrides)
    return LoadedAgent(config, agent_warnings(config, origins), None, origins)


def detect_kind(path: str | Path) -> Kind:
    """ "agent" or "gateway", from the file's top-level keys (a gateway file has no `agent` key)."""
    data = load_yaml_file(path).data
    if isinstance(data, dict) and "agent" not in data and GATEWAY_KEYS & set(data):
        return "gateway"
    return "agent"


def _load(
    path: str | Path | None, model: type[M], without_file: dict[str, Any], overrides: Sequence[str]
) -> tuple[M, Origins]:
    """`_build` of the file at `path`, or of `without_file` when there is no file."""
    if path is None:
        return _build(without_file, SourceMap(None), model, overrides)
    doc = load_yaml_file(path)
    return _build(doc.data, doc.source, model, overrides)


def _build(data: Any, source: SourceMap, model: type[M], overrides: Sequence[str]) -> tuple[M, Origins]:
    origins = Origins(source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise origins.error((), f"the document must be a mapping of keys, got {_show(data)}")
    origins.overrides = apply_overrides(data, overrides, model, source)
    errors: list[ConfigError] = []
    data = substitute_env_collect(data, source, errors, skip=origins.overrides.keys())
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        env_paths = [e.key_path for e in errors]
        for err in exc.errors():
            converted = _convert(err, model, origins)
            # A value whose ${ENV} failed is reported once, as the environment problem.
            if not any(_under(converted.key_path, p) for p in env_paths):
                errors.append(converted)
    if errors:
        # In file order; values from overrides (no line) last.
        errors.sort(key=lambda e: (e.line is None, e.line or 0))
        raise ConfigError.group(errors)
    return config, origins


def _under(key_path: str, ancestor: str) -> bool:
    return key_path == ancestor or key_path.startswith((ancestor + ".", ancestor + "["))


# ---------------------------------------------------------------------------------------------
# --set key.path=value


def parse_key_path(text: str) -> KeyPath:
    """`tools[1].url` -> ("tools", 1, "url"); also accepts `tools.1.url`."""
    parts: list[str | int] = []
    for segment in text.split("."):
        name, _, rest = segment.partition("[")
        if name:
            parts.append(int(name) if name.isdigit() else name)
        elif not rest:
            raise ValueError("empty key")
        while rest:
            index, close, rest = rest.partition("]")
            if not close or not index.isdigit() or (rest and not rest.startswith("[")):
                raise ValueError(f"bad index in {segment!r}")
            parts.append(int(index))
            rest = rest[1:]
    return tuple(parts)


def apply_overrides(
    data: dict[str, Any],
    overrides: Sequence[str],
    model: type[BaseModel] = AgentConfig,
    source: SourceMap | None = None,
) -> dict[KeyPath, str]:
    """Apply `key.path=value` overrides to `data` in place; returns {key path: override text}.

    The value is parsed as YAML (`0.3`, `vad`, `[0.5, 2.0]`, `null`). Paths start at the document
    root; in agent files a path whose first key is a `turn_handling` key is taken under
    `turn_handling` (`interruption.mode=vad`). Unknown paths are errors listing the allowed keys.
    The returned map also holds the sections an override created, so errors there name it.
    """
    origins: dict[KeyPath, str] = {}
    errors: list[ConfigError] = []
    for text in overrides:
        try:
            path, value = _parse_override(text, model)
            _set(data, path, value, text, origins)
        except ConfigError as exc:
            errors.append(exc)
            continue
        if source is not None:
            source.forget_below(path)
    if errors:
        raise ConfigError.group(errors)
    return origins


def _override_error(text: str, message: str, path: KeyPath = ()) -> ConfigError:
    return ConfigError(message, key_path=format_key_path(path), override=text)


def _parse_override(text: str, model: type[BaseModel]) -> tuple[KeyPath, Any]:
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise _override_error(text, "expected key.path=value, e.g. interruption.mode=vad")
    try:
        path = parse_key_path(key)
    except ValueError as exc:
        raise _override_error(text, f"invalid key path {key!r}: {exc}") from None
    if (
        model is AgentConfig
        and isinstance(path[0], str)
        and path[0] not in AgentConfig.model_fields
        and path[0] in TurnHandlingConfig.model_fields
    ):
        path = ("turn_handling", *path)
    _check_path(text, path, model)
    try:
        value = YAML(typ="safe", pure=True).load(raw) if raw.strip() else None
    except YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _override_error(text, f"the value {raw!r} is not valid YAML: {problem}", path) from None
    return path, value


def _check_path(text: str, path: KeyPath, model: type[BaseModel]) -> None:
    """Follow `path` through the schema; unknown keys are errors listing what is allowed."""
    current: Any = model
    for depth, part in enumerate(path):
        here = path[:depth]
        kind, inner = _shape(current)
        if kind == "model":
            assert isinstance(inner, type) and issubclass(inner, BaseModel)
            if part in inner.model_fields:
                current = inner.model_fields[str(part)].annotation
                continue
            if inner.model_config.get("extra") == "allow" and isinstance(part, str):
                return  # a provider's own key: the backend validates it
            allowed = ", ".join(inner.model_fields)
            where = f"under {format_key_path(here)}" if here else "at the top level"
            extra = ""
            if model is AgentConfig and not here:
                short = ", ".join(TurnHandlingConfig.model_fields)
                extra = f"; turn_handling keys may omit the prefix: {short}"
            raise _override_error(text, f"unknown key {part!r} {where}; allowed keys: {allowed}{extra}")
        if kind == "list":
            if not isinstance(part, int):
                raise _override_error(
                    text, f"{format_key_path(here)} is a list: use an index, e.g. {format_key_path(here)}[0]"
                )
            current = inner
            continue
        if kind == "any":
            return
        raise _override_error(text, f"{format_key_path(here)} is a single value and has no key {part!r}")


def _shape(tp: Any) -> tuple[str, Any]:
    """Classify a field annotation: ("model", cls) | ("list", item) | ("any", None) | ("value", None)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _shape(args[0])
        return ("value", None)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return ("model", tp)
    if origin is list:
        return ("list", typing.get_args(tp)[0])
    if origin is dict or tp is dict or tp is Any:
        return ("any", None)
    return ("value", None)


def _set(data: dict[str, Any], path: KeyPath, value: Any, text: str, origins: dict[KeyPath, str]) -> None:
    node: Any = data
    for depth, part in enumerate(path):
        here = path[: depth + 1]
        last = depth == len(path) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise _override_error(
                    text, f"index {part} is out of range: {format_key_path(path[:depth])} has {size} item(s)"
                )
            if last:
                node[part] = value
                break
            child = node[part]
        else:
            if last:
                node[part] = value
                break
            child = node.get(part)
            if child is None and isinstance(path[depth + 1], int):
                raise _override_error(text, f"index {path[depth + 1]} is out of range: {part} has no items")
            if child is None:
                child = {}
                node[part] = child
                origins.setdefault(here, text)
        wanted = list if isinstance(path[depth + 1], int) else dict
        if not isinstance(child, wanted):
            shape = "list" if wanted is list else "mapping"
            raise _override_error(text, f"is {_show(child)} in the file, not a {shape}", here)
        node = child
    origins[path] = text


# ---------------------------------------------------------------------------------------------
# pydantic errors -> ConfigError


def _convert(err: Mapping[str, Any], model: type[BaseModel], origins: Origins) -> ConfigError:
    loc: KeyPath = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if err["type"] == "cross_field":
        loc = (*loc, *ctx["field"])
    return origins.error(loc, _message(err, loc, model))


def _message(err: Mapping[str, Any], loc: KeyPath, model: type[BaseModel]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = _show(err.get("input"))
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = ", ".join(parent.model_fields) if parent is not None else "?"
        return f"unknown key {loc[-1]!r}; allowed keys: {allowed}"
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing" if loc else "required value is missing"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got}"
    if kind in ("float_type", "float_parsing", "number_type"):
        return f"must be a number, got {got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, got {got}"
    if kind == "string_type":
        return f"must be a string, got {got} (quote it)"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping of keys, got {got}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {got}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}, got {got}"
    if kind == "greater_than":
        return f"must be > {ctx.get('gt')}, got {got}"
    if kind == "less_than_equal":
        return f"must be <= {ctx.get('le')}, got {got}"
    if kind == "less_than":
        return f"must be < {ctx.get('lt')}, got {got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    message = str(err.get("msg", kind))
    return message.removeprefix("Value error, ")


def _model_at(model: type[BaseModel], path: KeyPath) -> type[BaseModel] | None:
    current: Any = model
    for part in path:
        kind, inner = _shape(current)
        if kind == "model" and isinstance(part, str) and part in inner.model_fields:
            current = inner.model_fields[part].annotation
        elif kind == "list" and isinstance(part, int):
            current = inner
        else:
            return None
    kind, inner = _shape(current)
    return inner if kind == "model" else None


# ---------------------------------------------------------------------------------------------
# warnings: valid settings that will not do what the operator may expect


def agent_warnings(config: AgentConfig, origins: Origins) -> list[str]:
    out: list[str] = []
    th = config.turn_handling
    it = th.interruption
    ip: KeyPath = ("turn_handling", "interruption")
    if it.min_words > 0 and config.stt is None:
        out.append(
            origins.warning(
                (*ip, "min_words"),
                "min_words needs a transcript, but there is no stt section: it will be ignored",
            )
        )
    if th.turn_detection == "stt" and config.stt is None:
        out.append(
            origins.warning(
                ("turn_handling", "turn_detection"),
                "turn_detection 'stt' needs an stt provider; without one it falls back to 'vad'",
            )
        )
    # Settings changed from their default that the rest of the configuration makes moot.
    if it.mode == "vad":
        for key in ("threshold", "backchannel_boundary", "detector_timeout", "detector_interval"):
            if _changed(it, key):
                message = f"{key} only applies in adaptive mode (mode is 'vad')"
                out.append(origins.warning((*ip, key), message))
    if not it.enabled:
        for key in type(it).model_fields:
            if key != "enabled" and _changed(it, key):
                out.append(origins.warning((*ip, key), "ignored: interruption.enabled is false"))
    if th.endpointing.mode == "fixed" and _changed(th.endpointing, "dynamic_alpha"):
        out.append(
            origins.warning(
                ("turn_handling", "endpointing", "dynamic_alpha"),
                "dynamic_alpha only applies when endpointing.mode is 'dynamic'",
            )
        )
    if config.tools and config.llm is None:
        out.append(origins.warning(("tools",), "tools are only called by an LLM, and there is no llm"))
    return out


def _changed(section: BaseModel, key: str) -> bool:
    """Was `key` set to something other than its default?"""
    default = type(section).model_fields[key].get_default(call_default_factory=True)
    return key in section.model_fields_set and getattr(section, key) != default


def gateway_warnings(config: GatewayConfig, origins: Origins) -> list[str]:
    out: list[str] = []
    sip = config.sip
    if sip.host not in ("127.0.0.1", "::1", "localhost") and not sip.allow and sip.auth is None:
        out.append(
            origins.warning(
                ("sip", "host"),
                f"listening on {sip.host} with neither sip.allow nor sip.auth: anyone who reaches "
                "the port can place calls",
            )
        )
    if sip.workers is not None and sip.max_calls is not None:
        capacity = sip.workers * sip.calls_per_worker
        if sip.max_calls > capacity:
            out.append(
                origins.warning(
                    ("sip", "max_calls"),
                    f"{sip.max_calls} exceeds workers * calls_per_worker = {capacity}; "
                    f"at most {capacity} calls will be answered",
                )
            )
    if sip.srtp != "off" and "tls" not in sip.transports:
        out.append(
            origins.warning(
                ("sip", "srtp"),
                "SRTP keys (SDES) travel in the SDP: without tls in sip.transports anyone who sees the "
                "SIP traffic can decrypt the media",
            )
        )
    if not config.routes and config.default_agent is None:
        out.append(origins.warning(("routes",), "no routes and no default_agent: every call is rejected"))
    return out


def route_agent_paths(config: GatewayConfig) -> list[tuple[KeyPath, str]]:
    """(key path, agent file) of every route and the default agent, for checking them."""
    out: list[tuple[KeyPath, str]] = [(("routes", i, "agent"), r.agent) for i, r in enumerate(config.routes)]
    if config.default_agent is not None:
        out.append((("default_agent",), config.default_agent))
    return out
