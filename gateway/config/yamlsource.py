"""YAML in, plain data plus a line for every key path out.

ruamel.yaml's round-trip loader keeps the line and column of every mapping key and sequence item.
We copy the document into plain Python values (dict, list, str, int, float, bool, None) for
validation and keep a `SourceMap` beside it: key path -> 1-based line. Key paths are tuples of
mapping keys (str) and list indices (int), the same shape as pydantic's error locations, so a
validation error at `("tools", 1, "url")` finds its line directly.

`${ENV}` substitution (`substitute_env`) runs on the plain data, before validation, so
`port: "${PORT:-5060}"` validates as an int.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from gateway.config.errors import ConfigError, KeyPath, format_key_path


@dataclass
class SourceMap:
    """Where each key path of one document was written."""

    file: str | None
    lines: dict[KeyPath, int] = field(default_factory=dict)
    values: int = 0  # values copied out of the document so far (aliases count each time)

    def line_of(self, path: KeyPath) -> int | None:
        """Line of `path`, or of its nearest ancestor that is in the file (None: nowhere)."""
        for n in range(len(path), -1, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return line
        return None

    def has(self, path: KeyPath) -> bool:
        return path in self.lines

    def forget_below(self, path: KeyPath) -> None:
        """Drop the lines of `path` and everything under it (an override replaced that value)."""
        n = len(path)
        for key in [k for k in self.lines if k[:n] == path]:
            del self.lines[key]

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """A `ConfigError` at `path` of this document (for backends validating their own keys)."""
        return ConfigError(message, file=self.file, line=self.line_of(path), key_path=format_key_path(path))


@dataclass
class YamlDocument:
    data: Any
    source: SourceMap


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def load_yaml_file(path: str | Path) -> YamlDocument:
    """Read and parse `path`; unreadable files and YAML errors become `ConfigError`s."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", file=name) from None
    return parse_yaml(text, name)


def parse_yaml(text: str, file: str | None = "<string>") -> YamlDocument:
    """Parse one YAML document from `text`; `file` is the name used in errors."""
    try:
        docs = list(_yaml().load_all(text))
    except MarkedYAMLError as exc:
        raise _marked_error(exc, text, file) from None
    except ReaderError as exc:  # a control character: ruamel gives its position, not a line
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"invalid YAML: character {exc.character!r} is not allowed", file=file, line=line
        ) from None
    except YAMLError as exc:  # pragma: no cover - ruamel marks nearly everything else
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if len(docs) > 1:
        raise ConfigError(
            f"expected one YAML document, found {len(docs)} (remove the '---' separators)", file=file
        )
    source = SourceMap(file)
    root = docs[0] if docs else None
    source.lines[()] = _node_line(root) or 1
    data = _plain(root, (), source)
    return YamlDocument(data, source)


def _node_line(obj: Any) -> int | None:
    lc = getattr(obj, "lc", None)
    if lc is None or getattr(lc, "line", None) is None:
        return None
    return int(lc.line) + 1


# More values than any configuration needs: aliases of aliases ("billion laughs") expand
# exponentially and would take the process's memory and minutes of CPU (found by fuzzing).
MAX_VALUES = 100_000


def _plain(obj: Any, path: KeyPath, source: SourceMap) -> Any:
    """Copy ruamel's round-trip values into plain Python values, recording key lines."""
    source.values += 1
    if source.values > MAX_VALUES:
        raise source.error(
            path, f"the document expands to more than {MAX_VALUES} values (aliases of aliases?)"
        )
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        own_line = _node_line(obj)
        lc: Any = getattr(obj, "lc", None)
        for key, value in obj.items():
            skey = key if isinstance(key, str) else _scalar_text(key)
            child = (*path, skey)
            line: int | None
            try:
                line = int(lc.key(key)[0]) + 1
            except (AttributeError, KeyError, TypeError):
                line = own_line  # a key that came in through a `<<:` merge
            if line is not None:
                source.lines[child] = line
            out[skey] = _plain(value, child, source)
        return out
    if isinstance(obj, list):
        items: list[Any] = []
        for i, value in enumerate(obj):
            child = (*path, i)
            with contextlib.suppress(AttributeError, KeyError, TypeError, IndexError):
                source.lines[child] = int(obj.lc.item(i)[0]) + 1  # type: ignore[attr-defined]
            items.append(_plain(value, child, source))
        return items
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, _dt.date | _dt.datetime):
        return obj.isoformat()
    if isinstance(obj, set | frozenset | tuple):
        return [_plain(v, (*path, i), source) for i, v in enumerate(obj)]
    tag = getattr(getattr(obj, "tag", None), "value", None) or type(obj).__name__
    raise source.error(path, f"unsupported YAML value with tag {tag}; use plain scalars, lists and mappings")


def _scalar_text(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _marked_error(exc: MarkedYAMLError, text: str, file: str | None) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or exc.context or "invalid YAML"
    key_path = ""
    if "duplicate key" in problem and mark is not None:
        found = _path_at(text, mark.line, mark.column)
        if found is not None:
            key_path = format_key_path(found)
        key = found[-1] if found else None
        # ruamel's context mark is the first occurrence of the key.
        original = exc.context_mark.line + 1 if exc.context_mark is not None else None
        message = f"duplicate key {key!r}" if key is not None else "duplicate key"
        if original is not None and original != line:
            message += f" (first given on line {original}; keep one)"
        return ConfigError(message, file=file, line=line, key_path=key_path)
    message = f"invalid YAML: {problem}"
    if exc.context and exc.problem:
        message += f" ({exc.context}"
        if exc.context_mark is not None and exc.context_mark.line != (mark.line if mark else None):
            message += f" started on line {exc.context_mark.line + 1}"
        message += ")"
    return ConfigError(message, file=file, line=line, key_path=key_path)


def _path_at(text: str, line: int, column: int) -> KeyPath | None:
    """The key path of the mapping key written at (line, column), found in the composed nodes.

    Composing builds the node tree without constructing values, so duplicate keys do not stop it.
    """
    try:
        root = _yaml().compose(text)
    except YAMLError:  # pragma: no cover - the duplicate-key case composes fine
        return None

    def walk(node: Node | None, path: KeyPath) -> KeyPath | None:
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                start = key_node.start_mark
                if start.line == line and start.column == column:
                    return (*path, key)
                found = walk(value_node, (*path, key))
                if found is not None:
                    return found
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                found = walk(item, (*path, i))
                if found is not None:
                    return found
        return None

    return walk(root, ())


# ---------------------------------------------------------------------------------------------
# ${ENV} substitution

_ENV_REF = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-)([^}]*))?\}|(\{[^}]*\}?))")
ENV_SYNTAX_HELP = "use ${NAME}, ${NAME:-default}, or $$ for a literal $"


def substitute_env(
    data: Any,
    source: SourceMap,
    environ: Mapping[str, str] | None = None,
    *,
    skip: Collection[KeyPath] = (),
) -> Any:
    """Replace `${NAME}`, `${NAME:-default}` and `$$` in every string scalar under `data`.

    `${NAME}` with NAME unset is an error; `${NAME:-default}` uses the default when NAME is unset
    or empty; `$$` is a literal `$`; a `$` before anything else stays as it is. All problems are
    reported together. Values at the key paths in `skip` (set by `--set` overrides) are left as given.
    """
    errors: list[ConfigError] = []
    result = substitute_env_collect(data, source, errors, environ, skip=skip)
    if errors:
        raise ConfigError.group(errors)
    return result


def substitute_env_collect(
    data: Any,
    source: SourceMap,
    errors: list[ConfigError],
    environ: Mapping[str, str] | None = None,
    *,
    skip: Collection[KeyPath] = (),
) -> Any:
    """`substitute_env` that appends problems to `errors` (and leaves those strings as written)."""
    env = os.environ if environ is None else environ
    return _subst(data, source, env, (), errors, frozenset(skip))


def _subst(
    value: Any,
    source: SourceMap,
    env: Mapping[str, str],
    path: KeyPath,
    errors: list[ConfigError],
    skip: frozenset[KeyPath],
) -> Any:
    if path in skip:
        return value
    if isinstance(value, dict):
        return {k: _subst(v, source, env, (*path, k), errors, skip) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst(v, source, env, (*path, i), errors, skip) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(m: re.Match[str]) -> str:
        dollar, name, has_default, default, bad = m.groups()
        if dollar:
            return "$"
        if bad is not None:
            errors.append(source.error(path, f"invalid environment reference '${bad}'; {ENV_SYNTAX_HELP}"))
            return m.group(0)
        current = env.get(name)
        if has_default:
            return current if current else default
        if current is None:
            errors.append(source.error(path, f"environment variable {name} is not set"))
            return m.group(0)
        return current

    return _ENV_REF.sub(replace, value)
