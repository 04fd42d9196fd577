"""Configuration errors that name the file, the line and the key path.

Every problem an operator can make in a YAML file ends up as a `ConfigError` rendered the way
compilers do, one problem per line::

    agents/dental.yaml:14: turn_handling.interruption.mode: must be one of 'vad' or 'adaptive', got 'x'

A value set on the command line (`--set key.path=value`) has no line; its errors name the override
instead::

    agents/dental.yaml: --set interruption.threshold=2: turn_handling.interruption.threshold: must be <= 1

Several problems found in one pass travel together in one exception (`ConfigError.errors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

KeyPath = tuple[str | int, ...]


def format_key_path(path: Sequence[str | int]) -> str:
    """`("tools", 1, "url")` -> `tools[1].url`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def format_location(file: str | None, line: int | None, override: str | None) -> str:
    """The `FILE:LINE` (or `FILE: --set k=v`) prefix shared by errors and warnings."""
    parts: list[str] = []
    if file is not None:
        parts.append(f"{file}:{line}" if line is not None else file)
    elif line is not None:
        parts.append(f"line {line}")
    if override is not None:
        parts.append(f"--set {override}")
    return ": ".join(parts)


class ConfigError(Exception):
    """One or more configuration problems.

    Attributes of a single problem: `file` (as given, or None for defaults), `line` (1-based, or
    None when the value came from an override or has no place in the file), `key_path` (dotted,
    with `[i]` for list items; "" for the whole document), `message` (what is wrong and what is
    allowed) and `override` (the `key=value` text when a `--set` produced the value).

    `errors` lists every problem; for a single problem it is `[self]`. The attributes of a group
    are those of its first problem, and `str()` renders all of them, one per line.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key_path: str = "",
        override: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.key_path = key_path
        self.message = message
        self.override = override
        self.errors: list[ConfigError] = [self]
        super().__init__(self.render())

    @classmethod
    def group(cls, errors: Iterable[ConfigError]) -> ConfigError:
        """One exception carrying several problems (flattened, in the given order)."""
        flat: list[ConfigError] = []
        for err in errors:
            flat.extend(err.errors)
        if not flat:
            raise ValueError("ConfigError.group() needs at least one error")
        if len(flat) == 1:
            return flat[0]
        first = flat[0]
        grouped = cls(
            first.message,
            file=first.file,
            line=first.line,
            key_path=first.key_path,
            override=first.override,
        )
        grouped.errors = flat
        grouped.args = ("\n".join(e.render() for e in flat),)
        return grouped

    def render(self) -> str:
        """This problem alone, as `FILE:LINE: key.path: message`."""
        parts = [p for p in (format_location(self.file, self.line, self.override), self.key_path) if p]
        parts.append(self.message)
        return ": ".join(parts)

    def __str__(self) -> str:
        return "\n".join(e.render() for e in self.errors)
