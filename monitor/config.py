"""sites.yaml -> a frozen Config. Unknown keys, bad values and broken references are all
reported at once as `file:line:col: key.path: message` (see schema.py for the mechanics)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from monitor import notify, probes
from monitor.conditions import ACK_DEADLINE, BUILT_INS
from monitor.errors import ConfigError, ConfigIssue
from monitor.maintenance import MaintenanceWindow, unknown_sites
from monitor.redact import Secret
from monitor.results import Severity
from monitor.schema import Duration, HttpUrl, Reader, join, schema_fields

# libyaml's composer when PyYAML was built with it: same nodes and marks, far less memory and time.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
CHECK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
HANDLE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(text)
        return cls(host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104 - ":9400" means all

    @classmethod
    def from_yaml(cls, reader: Reader, node: yaml.Node, path: str) -> Listen | None:
        got = reader.scalar(node, path)
        if got is None:
            return None
        try:
            return cls.parse(str(got[0]))
        except ValueError:
            reader.error(node, path, f"expected host:port like 127.0.0.1:9400, got {got[0]!r}")
            return None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Tokens:
    responder: Secret | None = None
    owner: Secret | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorSettings:
    listen: Listen = Listen("127.0.0.1", 9400)
    store: str = "sqlite:///./monitor.db"
    workspace: str = "."
    tokens: Tokens = Tokens()
    public_url: str | None = None
    title: str = "monitor"
    max_concurrency: int = 256
    canaries: tuple[HttpUrl, ...] = ()  # the prober must reach one of these, or it is offline itself

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.store.startswith(("sqlite://", "postgresql://", "postgres://")):
            yield "store", f"expected sqlite:///path or postgresql://…, got {self.store.split(':')[0]!r}"
        if self.max_concurrency < 1:
            yield "max_concurrency", "must be at least 1"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSettings:
    """Outbox and storm control (docs/oncall.md). group_threshold 0 turns grouping off."""

    group_window: Duration = Duration(30)
    group_threshold: int = 3
    retry_initial: Duration = Duration(1)
    retry_max: Duration = Duration(300)
    drain_timeout: Duration = Duration(10)

    def check(self) -> Iterator[tuple[str, str]]:
        if self.group_threshold < 0 or self.group_threshold == 1:
            yield "group_threshold", "must be 0 (off) or at least 2"
        if self.retry_initial <= 0 or self.retry_max < self.retry_initial:
            yield "retry_max", "retry_initial must be > 0 and retry_max at least retry_initial"


@dataclass(frozen=True, slots=True, kw_only=True)
class Defaults:
    interval: Duration = Duration(30)
    timeout: Duration = Duration(10)
    failure_threshold: int = 3
    success_threshold: int = 2

    def check(self) -> Iterator[tuple[str, str]]:
        yield from _threshold_rules(self.failure_threshold, self.success_threshold)
        yield from _timing_rules(self.interval, self.timeout)


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    name: str
    title: str = ""
    notify: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    name: str
    type: str
    params: Any

    @classmethod
    def from_yaml(cls, reader: Reader, node: yaml.Node, path: str) -> ChannelSpec | None:
        kind = _type_of(reader, node, path, notify.load_all(), "channel")
        if kind is None:
            return None
        params = reader.build(notify.CHANNELS[kind].params, node, path, ignore=("type",))
        return None if params is None else cls(path.rsplit(".", 1)[-1], kind, params)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConditionOverride:
    severity: Severity | None = None
    halt: bool | None = None
    first_responders: tuple[str, ...] | None = None
    escalation: tuple[str, ...] | None = None
    escalate_after: Duration | None = None
    escalate_immediately: bool | None = None
    auto_resolve: bool | None = None
    remind_every: Duration | None = None
    impact: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConditionPolicy:
    """Everything the engine needs to know about one condition, defaults already applied."""

    name: str
    severity: Severity
    halt: bool
    auto_resolve: bool
    impact: str
    first_responders: tuple[str, ...] = ()
    escalation: tuple[str, ...] = ()
    escalate_after: float | None = None
    escalate_immediately: bool = False
    remind_every: float | None = None

    def ack_deadline(self, severity: Severity) -> float | None:
        """Seconds an incident of `severity` may stay unacknowledged before escalating."""
        if severity is Severity.SEV4:
            return None
        return self.escalate_after if self.escalate_after is not None else ACK_DEADLINE[severity]


_COMMON_CHECK_KEYS = (
    "type",
    "name",
    "interval",
    "timeout",
    "failure_threshold",
    "success_threshold",
    "condition",
    "severity",
    "confirm",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirm:
    """Probe from each of `regions` and trip only when `quorum` of them fail (see cluster.py)."""

    regions: tuple[str, ...]
    quorum: int | None = None

    @property
    def needed(self) -> int:
        return self.quorum if self.quorum is not None else len(self.regions) // 2 + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckCommon:
    type: str
    name: str | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    failure_threshold: int | None = None
    success_threshold: int | None = None
    condition: str | None = None
    severity: Severity | None = None
    confirm: Confirm | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One configured check with defaults resolved. Runtime state never lives here."""

    site: str
    client: str
    name: str
    type: str
    params: Any
    interval: float
    timeout: float
    failure_threshold: int
    success_threshold: int
    condition: str | None = None
    severity: Severity | None = None
    confirm: Confirm | None = None

    @property
    def key(self) -> str:
        return f"{self.site}/{self.name}"

    @property
    def target(self) -> str:
        return probes.PROBES[self.type].target(self.params)


@dataclass(frozen=True, slots=True)
class RawCheck:
    common: CheckCommon
    params: Any

    @classmethod
    def from_yaml(cls, reader: Reader, node: yaml.Node, path: str) -> RawCheck | None:
        kind = _type_of(reader, node, path, probes.load_all(), "check")
        if kind is None:
            return None
        params_cls = probes.PROBES[kind].params
        own = set(schema_fields(params_cls))
        params = reader.build(params_cls, node, path, ignore=_COMMON_CHECK_KEYS)
        pairs = reader.pairs(node, path) or {}
        foreign = [k for k in pairs if k not in _COMMON_CHECK_KEYS or k in own]
        common = reader.build(CheckCommon, node, path, ignore=foreign)
        if params is None or common is None:
            return None
        return cls(common, params)


@dataclass(frozen=True, slots=True, kw_only=True)
class RawSite:
    name: str
    client: str = ""
    checks: tuple[RawCheck, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RawConfig:
    version: int
    monitor: MonitorSettings = MonitorSettings()
    defaults: Defaults = Defaults()
    people: dict[str, Person] = field(default_factory=dict)
    channels: dict[str, ChannelSpec] = field(default_factory=dict)
    conditions: dict[str, ConditionOverride] = field(default_factory=dict)
    sites: tuple[RawSite, ...] = ()
    notifications: NotificationSettings = NotificationSettings()
    maintenance: tuple[MaintenanceWindow, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration, validated and with every default applied."""

    source: str
    monitor: MonitorSettings
    defaults: Defaults
    people: Mapping[str, Person]
    channels: Mapping[str, ChannelSpec]
    conditions: Mapping[str, ConditionPolicy]
    checks: tuple[Check, ...]
    sites: Mapping[str, str]  # site name -> client
    notifications: NotificationSettings = NotificationSettings()
    maintenance: tuple[MaintenanceWindow, ...] = ()

    @property
    def workspace(self) -> Path:
        base = Path(self.source).resolve().parent if self.source != "<string>" else Path.cwd()
        return (base / self.monitor.workspace).resolve()

    def check_by_key(self, key: str) -> Check | None:
        return next((c for c in self.checks if c.key == key), None)

    def secrets(self) -> list[str]:
        """Every configured secret value (for redaction tests and log scrubbing)."""
        out: list[str] = []
        for obj in [self.monitor.tokens, *(c.params for c in self.channels.values()), *(c.params for c in self.checks)]:
            out.extend(_secrets_in(obj))
        return [s for s in out if s]


def _secrets_in(obj: object) -> Iterable[str]:
    if isinstance(obj, Secret):
        yield obj.reveal()
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            yield from _secrets_in(getattr(obj, name))
    elif isinstance(obj, tuple | list):
        for item in obj:
            yield from _secrets_in(item)
    elif isinstance(obj, Mapping):
        for item in obj.values():
            yield from _secrets_in(item)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file. Raises ConfigError listing every problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(name, 1, 1, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(name, 1, 1, "", f"cannot read file: {exc}")]) from None
    return parse_config(text, name, os.environ if env is None else env)


def parse_config(text: str, file: str = "<string>", env: Mapping[str, str] | None = None) -> Config:
    reader = Reader(file, {} if env is None else env)
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        _raise_yaml_error(text, file)  # the pure-Python parser words errors the same everywhere
    if root is None:
        raise ConfigError([ConfigIssue(file, 1, 1, "", "the file is empty; expected `version: 1` and `sites:`")])
    raw = reader.build(RawConfig, root, "")
    reader.raise_if_issues()
    assert raw is not None
    config = _resolve(raw, reader, root, file)
    reader.raise_if_issues()
    return config


def _raise_yaml_error(text: str, file: str) -> NoReturn:
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError([ConfigIssue(file, line, col, "", f"invalid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    raise ConfigError([ConfigIssue(file, 1, 1, "", "invalid YAML")])


def _resolve(raw: RawConfig, reader: Reader, root: yaml.Node, file: str) -> Config:
    locate = _Locator(reader, root)
    if raw.version != 1:
        locate.error(["version"], f"expected 1, got {raw.version}")
    for handle, person in raw.people.items():
        if not HANDLE.match(handle):
            locate.error(["people", handle], "person handles are lowercase letters, digits, '.', '_' or '-'")
        for i, channel in enumerate(person.notify):
            if channel not in raw.channels:
                locate.error(
                    ["people", handle, "notify", i], f"unknown channel {channel!r}{_hint(channel, raw.channels)}"
                )
    conditions = _conditions(raw, locate)
    checks, sites = _checks(raw, conditions, locate)
    for wi, si, site in unknown_sites(raw.maintenance, sites):
        locate.error(["maintenance", wi, "sites", si], f"unknown site {site!r}{_hint(site, sites)}")
    return Config(
        source=file,
        monitor=raw.monitor,
        defaults=raw.defaults,
        people=raw.people,
        channels=raw.channels,
        conditions=conditions,
        checks=tuple(checks),
        sites=sites,
        notifications=raw.notifications,
        maintenance=raw.maintenance,
    )


def _conditions(raw: RawConfig, locate: _Locator) -> dict[str, ConditionPolicy]:
    out: dict[str, ConditionPolicy] = {}
    for name in {**BUILT_INS, **raw.conditions}:
        base = BUILT_INS.get(name)
        over = raw.conditions.get(name, ConditionOverride())
        if base is None and over.severity is None:
            hint = _hint(name, BUILT_INS)
            locate.error(["conditions", name], f"unknown condition; a new one needs a severity{hint}")
            continue
        for key in ("first_responders", "escalation"):
            for i, handle in enumerate(getattr(over, key) or ()):
                if handle not in raw.people:
                    locate.error(["conditions", name, key, i], f"unknown person {handle!r}{_hint(handle, raw.people)}")
        severity = over.severity or (base.severity if base else Severity.SEV3)
        out[name] = ConditionPolicy(
            name=name,
            severity=severity,
            halt=over.halt if over.halt is not None else bool(base and base.halt),
            auto_resolve=over.auto_resolve
            if over.auto_resolve is not None
            else bool(base is None or base.auto_resolve),
            impact=over.impact or (base.impact if base else name.replace("_", " ")),
            first_responders=over.first_responders or (),
            escalation=over.escalation or (),
            escalate_after=over.escalate_after,
            escalate_immediately=(
                over.escalate_immediately
                if over.escalate_immediately is not None
                else bool(base and base.escalate_immediately)
            ),
            remind_every=over.remind_every,
        )
    return out


def _checks(
    raw: RawConfig, conditions: Mapping[str, ConditionPolicy], locate: _Locator
) -> tuple[list[Check], dict[str, str]]:
    checks: list[Check] = []
    sites: dict[str, str] = {}
    d = raw.defaults
    for si, site in enumerate(raw.sites):
        if not NAME.match(site.name):
            locate.error(["sites", si, "name"], f"site names are lowercase letters, digits and '-', got {site.name!r}")
        if site.name in sites:
            locate.error(["sites", si, "name"], f"duplicate site name {site.name!r}")
        sites[site.name] = site.client
        seen: set[str] = set()
        for ci, rc in enumerate(site.checks):
            c = rc.common
            name = c.name or c.type
            where: list[str | int] = ["sites", si, "checks", ci]
            if not CHECK_NAME.match(name):
                locate.error([*where, "name"], f"check names are lowercase letters, digits, '_' and '-', got {name!r}")
            if name in seen:
                what = "duplicate check name" if c.name else f"a second {c.type!r} check needs a `name`"
                locate.error([*where, "name"] if c.name else where, f"{what} ({name!r})")
            seen.add(name)
            if c.condition is not None and c.condition not in conditions:
                locate.error(
                    [*where, "condition"], f"unknown condition {c.condition!r}{_hint(c.condition, conditions)}"
                )
            check = Check(
                site=site.name,
                client=site.client,
                name=name,
                type=c.type,
                params=rc.params,
                interval=float(c.interval or d.interval),
                timeout=float(c.timeout or d.timeout),
                failure_threshold=c.failure_threshold or d.failure_threshold,
                success_threshold=c.success_threshold or d.success_threshold,
                condition=c.condition,
                severity=c.severity,
                confirm=c.confirm,
            )
            if c.confirm is not None:
                for key, message in _confirm_rules(c.confirm):
                    locate.error([*where, "confirm", key], message)
            for key, message in [
                *_threshold_rules(check.failure_threshold, check.success_threshold),
                *_timing_rules(check.interval, check.timeout),
            ]:
                locate.error([*where, key], message)
            checks.append(check)
    return checks, sites


def _confirm_rules(confirm: Confirm) -> Iterator[tuple[str, str]]:
    if not confirm.regions:
        yield "regions", "list at least one region"
    elif len(set(confirm.regions)) != len(confirm.regions):
        yield "regions", "regions are listed twice"
    if confirm.quorum is not None and not 1 <= confirm.quorum <= len(confirm.regions):
        yield "quorum", f"must be between 1 and the number of regions ({len(confirm.regions)}), got {confirm.quorum}"


def _threshold_rules(failures: int, successes: int) -> Iterator[tuple[str, str]]:
    if failures < 1:
        yield "failure_threshold", "must be at least 1"
    if successes < 1:
        yield "success_threshold", "must be at least 1"


def _timing_rules(interval: float, timeout: float) -> Iterator[tuple[str, str]]:
    if interval < 0.1:
        yield "interval", "must be at least 100ms"
    if timeout <= 0:
        yield "timeout", "must be longer than 0s"
    elif timeout > interval:
        yield "timeout", "must not be longer than the interval"


def _type_of(reader: Reader, node: yaml.Node, path: str, registry: Mapping[str, Any], what: str) -> str | None:
    pairs = reader.pairs(node, path)
    if pairs is None:
        return None
    if "type" not in pairs:
        reader.error(node, join(path, "type"), f"is required (one of {', '.join(sorted(registry))})")
        return None
    got = reader.scalar(pairs["type"][1], join(path, "type"))
    if got is None:
        return None
    kind = str(got[0])
    if kind not in registry:
        hint = _hint(kind, registry) or f"; known: {', '.join(sorted(registry))}"
        reader.error(pairs["type"][1], join(path, "type"), f"unknown {what} type {kind!r}{hint}")
        return None
    return kind


def _hint(word: str, options: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Locator:
    """Finds the node for a key path after the dataclasses are built, to place late errors."""

    def __init__(self, reader: Reader, root: yaml.Node) -> None:
        self.reader = reader
        self.root = root

    def error(self, keys: list[str | int], message: str) -> None:
        node: yaml.Node = self.root
        path = ""
        for key in keys:
            child = self._child(node, key)
            path = f"{path}[{key}]" if isinstance(key, int) else join(path, key)
            if child is None:
                break
            node = child
        self.reader.error(node, path, message)

    @staticmethod
    def _child(node: yaml.Node, key: str | int) -> yaml.Node | None:
        if isinstance(key, int) and isinstance(node, yaml.SequenceNode):
            child: yaml.Node | None = node.value[key] if key < len(node.value) else None
            return child
        if isinstance(key, str) and isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if getattr(k, "value", None) == key:
                    found: yaml.Node = v if not isinstance(v, yaml.ScalarNode) or v.value else k
                    return found
        return None
