"""YAML nodes -> frozen dataclasses, with every error located at file:line:col and a key path.

Config classes (in config.py, probes/*.py, notify/*.py) are plain frozen dataclasses.
Their field annotations are the schema: `str`, `int`, `float`, `bool`, `Duration`,
`Secret`, `HttpUrl`, `Literal[...]`, `X | None`, `tuple[X, ...]`, `dict[str, X]`,
nested dataclasses, or any class with a `from_yaml(reader, node, path)` classmethod.
A dataclass may define `check(self) -> Iterable[tuple[str, str]]` returning
(field, message) pairs for cross-field rules. Field metadata `{"yaml": "key"}`
renames a key.

`${VAR}` and `${VAR:-default}` are replaced in every string scalar before it is
converted; values that came from the environment are never echoed in errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from monitor.errors import ConfigError, ConfigIssue
from monitor.redact import Secret, safe_url
from monitor.results import Severity

T = TypeVar("T")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Duration(float):
    """Seconds, written in YAML as `250ms`, `10s`, `5m`, `2h`, `1d` or `1h30m`."""

    @classmethod
    def parse(cls, text: str) -> Duration:
        text = text.strip()
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                raise ValueError(text)
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(text)
        return cls(total)

    def __str__(self) -> str:
        return format_duration(self)


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class HttpUrl(str):
    """An absolute http:// or https:// URL with a host."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> HttpUrl:
        match = re.match(r"^(https?)://([^/?#\s]+)([^\s]*)$", text)
        if not match or match.group(2).startswith(":") or match.group(2).endswith("@"):
            raise ValueError(text)
        return cls(text)


class _Fmt:
    """How a value is shown in an error: as written, unless it came from the environment."""

    def __init__(self, raw: object, from_env: str | None) -> None:
        self.raw = raw
        self.from_env = from_env

    def __str__(self) -> str:
        if self.from_env is not None:
            return f"the value of ${{{self.from_env}}}"
        if isinstance(self.raw, str):
            return repr(self.raw)
        return "nothing" if self.raw is None else repr(self.raw)


class Reader:
    """Collects every issue in one pass so a user fixes a config in one go."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.issues: list[ConfigIssue] = []
        self._loader = yaml.SafeLoader("")

    # -- reporting -------------------------------------------------------------------------

    def error(self, node: yaml.Node | None, path: str, message: str) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.issues.append(ConfigIssue(self.file, line, col, path, message))

    def raise_if_issues(self) -> None:
        if self.issues:
            raise ConfigError(self.issues)

    # -- scalars ---------------------------------------------------------------------------

    def scalar(self, node: yaml.Node, path: str) -> tuple[Any, str | None] | None:
        """The node's Python value after env interpolation, and the env var it came from."""
        if not isinstance(node, yaml.ScalarNode):
            kind = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
            self.error(node, path, f"expected a single value, got {kind}")
            return None
        try:
            value = self._loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.error(node, path, f"cannot read value: {exc}")
            return None
        if isinstance(value, str) and "$" in value:
            return self._interpolate(node, path, value)
        return value, None

    def _interpolate(self, node: yaml.Node, path: str, text: str) -> tuple[str, str | None] | None:
        missing: list[str] = []
        used: list[str] = []

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            used.append(name)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        value = _ENV.sub(sub, text)
        if missing:
            names = ", ".join(missing)
            plural = "s" if len(missing) > 1 else ""
            verb = "are" if len(missing) > 1 else "is"
            self.error(node, path, f"environment variable{plural} {names} {verb} not set")
            return None
        return value, (used[0] if used else None)

    # -- typed values ----------------------------------------------------------------------

    def value(self, tp: Any, node: yaml.Node, path: str) -> Any:
        """Convert `node` to annotation `tp`; on error record it and return None."""
        if tp is Any:
            return self._any(node, path)
        origin = get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                return None
            return self.value(args[0], node, path) if len(args) == 1 else self._union(args, node, path)
        if origin is tuple:
            return self._sequence(get_args(tp)[0], node, path)
        if origin in (dict, Mapping):
            return self._mapping(get_args(tp)[1], node, path)
        if origin is Literal:
            return self._literal(get_args(tp), node, path)
        if isinstance(tp, type) and hasattr(tp, "from_yaml"):
            return tp.from_yaml(self, node, path)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.build(tp, node, path)
        return self._scalar_of(tp, node, path)

    def _any(self, node: yaml.Node, path: str) -> Any:
        if isinstance(node, yaml.ScalarNode):
            got = self.scalar(node, path)
            return None if got is None else got[0]
        if isinstance(node, yaml.SequenceNode):
            return [self._any(child, f"{path}[{i}]") for i, child in enumerate(node.value)]
        pairs = self.pairs(node, path) or {}
        return {key: self._any(child, join(path, key)) for key, (_, child) in pairs.items()}

    def _union(self, args: list[Any], node: yaml.Node, path: str) -> Any:
        before = len(self.issues)
        for arg in args:
            result = self.value(arg, node, path)
            if len(self.issues) == before:
                return result
            del self.issues[before:]
        names = " or ".join(_describe(a) for a in args)
        self.error(node, path, f"expected {names}")
        return None

    def _literal(self, options: tuple[Any, ...], node: yaml.Node, path: str) -> Any:
        got = self.scalar(node, path)
        if got is None:
            return None
        if got[0] in options:
            return got[0]
        hint = _did_you_mean(str(got[0]), [str(o) for o in options])
        choices = ", ".join(str(o) for o in options)
        self.error(node, path, f"expected one of {choices}, got {_Fmt(*got)}{hint}")
        return None

    def _scalar_of(self, tp: Any, node: yaml.Node, path: str) -> Any:
        got = self.scalar(node, path)
        if got is None:
            return None
        raw, env = got
        converter = _CONVERTERS.get(tp)
        if converter is None:
            raise TypeError(f"schema: no converter for {tp!r} at {path}")
        expected, convert = converter
        try:
            return convert(raw, env is not None)
        except (ValueError, TypeError):
            shown: object = "a secret" if tp is Secret else _Fmt(raw, env)
            if tp is HttpUrl and env is None and isinstance(raw, str):
                shown = repr(safe_url(raw))  # never echo user:password@ or a query token
            hint = ""
            if tp is Duration and isinstance(raw, int | float) and not isinstance(raw, bool):
                hint = f" (add a unit, e.g. {raw}s)"
            self.error(node, path, f"expected {expected}, got {shown}{hint}")
            return None

    def _sequence(self, item: Any, node: yaml.Node, path: str) -> tuple[Any, ...] | None:
        if not isinstance(node, yaml.SequenceNode):
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                return ()
            self.error(node, path, f"expected a list of {_describe(item)}")
            return None
        return tuple(self.value(item, child, f"{path}[{i}]") for i, child in enumerate(node.value))

    def _mapping(self, item: Any, node: yaml.Node, path: str) -> dict[str, Any] | None:
        pairs = self.pairs(node, path)
        if pairs is None:
            return None
        return {key: self.value(item, child, join(path, key)) for key, (_, child) in pairs.items()}

    def pairs(self, node: yaml.Node, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """A mapping's keys (as strings) to (key node, value node); duplicates are errors."""
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, "expected a mapping of keys to values")
            return None
        try:
            self._loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self.error(node, path, f"cannot merge: {exc}")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.error(key_node, path, "keys must be plain strings")
                continue
            if key in out:
                first = out[key][0].start_mark.line + 1
                self.error(key_node, join(path, key), f"duplicate key (first defined on line {first})")
                continue
            out[key] = (key_node, value_node)
        return out

    # -- dataclasses -----------------------------------------------------------------------

    def build(
        self,
        cls: type[T],
        node: yaml.Node,
        path: str,
        *,
        extra: Mapping[str, Any] | None = None,
        ignore: Iterable[str] = (),
    ) -> T | None:
        """Build dataclass `cls` from a mapping node; unknown keys are errors with a hint."""
        pairs = self.pairs(node, path)
        if pairs is None:
            return None
        fields = schema_fields(cls)
        ignored = set(ignore)
        kwargs: dict[str, Any] = dict(extra or {})
        before = len(self.issues)
        for key, (key_node, value_node) in pairs.items():
            if key in ignored:
                continue
            if key not in fields:
                known = sorted(set(fields) | ignored)
                hint = _did_you_mean(key, known)
                self.error(key_node, join(path, key), f"unknown key{hint}")
                continue
            name, tp = fields[key]
            kwargs[name] = self.value(tp, value_node, join(path, key))
        for key, (name, _) in fields.items():
            if name not in kwargs and _required(cls, name):
                self.error(node, join(path, key), "is required")
        if len(self.issues) > before:
            return None
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as exc:  # a __post_init__ refusing a combination
            self.error(node, path, str(exc))
            return None
        check = getattr(obj, "check", None)
        if callable(check):
            for field_name, message in check():
                target = pairs.get(field_name, (node, node))[1]
                self.error(target, join(path, field_name) if field_name else path, message)
        return obj


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def schema_fields(cls: type) -> dict[str, tuple[str, Any]]:
    """YAML key -> (attribute name, annotation) for a config dataclass."""
    return _fields_of(cls)


@functools.cache
def _fields_of(cls: Any) -> dict[str, tuple[str, Any]]:
    # cached: resolving type hints is the slowest part of building 10,000 checks
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[str, Any]] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("internal"):
            continue
        out[f.metadata.get("yaml", f.name)] = (f.name, hints[f.name])
    return out


def _required(cls: type, name: str) -> bool:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(tp: Any) -> str:
    if get_origin(tp) is tuple:
        return f"a list of {_describe(get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return _CONVERTERS[tp][0] if tp in _CONVERTERS else getattr(tp, "__name__", str(tp))


def _to_int(raw: object, from_env: bool) -> int:
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int):
        return raw
    if from_env and isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
        return int(raw)
    raise ValueError


def _to_float(raw: object, from_env: bool) -> float:
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int | float):
        return float(raw)
    if from_env and isinstance(raw, str):
        return float(raw)
    raise ValueError


def _to_bool(raw: object, from_env: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if from_env and isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise ValueError


def _to_str(raw: object, _: bool) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    raise ValueError


def _to_duration(raw: object, _: bool) -> Duration:
    if isinstance(raw, str):
        return Duration.parse(raw)
    raise ValueError


def _to_secret(raw: object, _: bool) -> Secret:
    if isinstance(raw, str):
        return Secret(raw)
    raise ValueError


def _to_url(raw: object, _: bool) -> HttpUrl:
    if isinstance(raw, str):
        return HttpUrl.parse(raw)
    raise ValueError


def _to_severity(raw: object, _: bool) -> Severity:
    if isinstance(raw, str):
        return Severity(raw.strip().upper())
    raise ValueError


_CONVERTERS: dict[Any, tuple[str, Callable[[object, bool], Any]]] = {
    str: ("a string", _to_str),
    int: ("a whole number", _to_int),
    float: ("a number", _to_float),
    bool: ("true or false", _to_bool),
    Duration: ("a duration like 10s", _to_duration),
    Secret: ("a string", _to_secret),
    HttpUrl: ("an http:// or https:// URL", _to_url),
    Severity: ("a severity SEV-1, SEV-2, SEV-3 or SEV-4", _to_severity),
}
