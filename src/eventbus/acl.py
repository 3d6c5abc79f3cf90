"""Access control: who a peer may be (its binding) and what it may do (its grant).

The broker learns a peer's credentials from the OS at accept time; the peer's Hello only
names the principal it wants to be. :meth:`Policy.authenticate` grants that principal when the
policy binds it to credentials the peer actually has, and returns the :class:`Grant` the
connection then works under: publish and subscribe filters compiled into a
:class:`~eventbus._backend.RightsTable`, and the admin right. Everything is default deny, and
every denial names the principal, the input and the rule set, so an operator can tell which
policy said no and why.

A policy comes from :func:`default_policy` (the hierarchy of DESIGN §3, every principal bound
to the broker's own uid) or from a TOML file (:meth:`Policy.load`); the file format is
described in ``docs/acl.md``. A file is validated completely at load: the first error is
refused with a :class:`~eventbus.errors.PolicyError` naming the file and the line.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._backend import PUBLISH as _PUBLISH
from ._backend import SUBSCRIBE as _SUBSCRIBE
from ._backend import RightsTable, validate_filter
from ._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS
from .errors import InvalidTopic, PermissionDenied, PolicyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

if sys.platform != "win32":
    import grp
    import pwd

__all__ = [
    "DEFAULT_RULE_SET",
    "Binding",
    "Credentials",
    "Grant",
    "Policy",
    "PrincipalRule",
    "default_policy",
]

DEFAULT_RULE_SET = "embedded default policy"
"""The rule-set name of :func:`default_policy`, as it appears in denials."""


class Credentials(Protocol):
    """What the OS told the broker about a peer; ``None`` where the OS did not say.

    ``eventbus.transport.PeerCredentials`` has these attributes; so may any test double.
    """

    @property
    def pid(self) -> int | None: ...

    @property
    def uid(self) -> int | None: ...

    @property
    def gid(self) -> int | None: ...

    @property
    def exe(self) -> str | None: ...

    @property
    def groups(self) -> frozenset[int]: ...

    @property
    def cgroup(self) -> str | None: ...

    @property
    def unit(self) -> str | None: ...


def _same_file_key(path: str) -> str:
    # Both sides are resolved so a symlinked install path and /proc's resolved exe agree.
    return os.path.normcase(os.path.realpath(path))


def _listing(values: Iterable[int] | Iterable[str]) -> str:
    return "[" + ", ".join(str(value) for value in sorted(values)) + "]"


_UNIT_SUFFIXES = (".service", ".scope")


def _unit_problem(unit: str) -> str | None:
    """Why ``unit`` can never name a peer's unit, or None if it can."""
    if "/" in unit or not unit.endswith(_UNIT_SUFFIXES) or unit in _UNIT_SUFFIXES:
        # the transport only ever reports a cgroup path component ending so
        return f"unit {unit!r} is not a systemd unit name ending in .service or .scope"
    return None


def _cgroup_problem(path: str) -> str | None:
    """Why ``path`` is not a cgroup path a binding can use, or None if it is."""
    if path == "/":
        return None
    parts = path.split("/")
    if parts[0] or any(part in ("", ".", "..") for part in parts[1:]):
        return (
            f"cgroup {path!r} is not an absolute cgroup path like '/system.slice/x.service' "
            "(no empty, '.' or '..' parts, no trailing '/')"
        )
    return None


def _within(cgroup: str, tree: str) -> bool:
    """Whether ``cgroup`` is ``tree`` or below it: a prefix counts only at a '/' boundary."""
    return cgroup == tree or tree == "/" or cgroup.startswith(tree + "/")


@dataclass(frozen=True, slots=True)
class Binding:
    """Which OS credentials may act as a principal. ``None`` means no constraint.

    Every constraint given must hold, and a credential the OS did not report (``None``) never
    satisfies one. ``gids`` is satisfied by the primary gid or any supplementary group.
    ``executables`` are absolute paths, compared with the peer's executable after
    :func:`os.path.realpath` of both. ``units`` are systemd unit names (``*.service``,
    ``*.scope``), compared exactly with the peer's unit. ``cgroups`` are cgroup v2 paths; the
    peer's cgroup satisfies one when it is that path or lies below it (``/a/b`` is below
    ``/a``, ``/ab`` is not). ``Binding()`` admits anyone: a policy file has to say
    ``any_user = true`` to get it, so it never happens by omission.
    """

    uids: frozenset[int] | None = None
    gids: frozenset[int] | None = None
    executables: frozenset[str] | None = None
    units: frozenset[str] | None = None
    cgroups: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name in ("uids", "gids", "executables", "units", "cgroups"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        for path in self.executables or ():
            if not os.path.isabs(path):
                raise ValueError(f"executable binding {path!r} is not an absolute path")
        problems = [_unit_problem(unit) for unit in self.units or ()]
        problems += [_cgroup_problem(path) for path in self.cgroups or ()]
        for problem in problems:
            if problem is not None:
                raise ValueError(f"binding: {problem}")

    @property
    def unrestricted(self) -> bool:
        """Whether this binding admits every peer."""
        return all(
            value is None
            for value in (self.uids, self.gids, self.executables, self.units, self.cgroups)
        )

    def admits(self, creds: Credentials) -> bool:
        """Whether the peer with ``creds`` satisfies every constraint."""
        return self.refusal(creds) is None

    def refusal(self, creds: Credentials) -> str | None:
        """Why ``creds`` is not admitted (the first failed constraint), or None if it is."""
        if self.uids is not None:
            if creds.uid is None:
                return "the peer's uid is unknown and the binding requires one"
            if creds.uid not in self.uids:
                return f"uid {creds.uid} not in {_listing(self.uids)}"
        if self.gids is not None:
            held = set(creds.groups)
            if creds.gid is not None:
                held.add(creds.gid)
            if not held:
                return "the peer's groups are unknown and the binding requires one"
            if held.isdisjoint(self.gids):
                return f"groups {_listing(held)} not in {_listing(self.gids)}"
        if self.executables is not None:
            if creds.exe is None:
                return "the peer's executable is unknown and the binding requires one"
            actual = _same_file_key(creds.exe)
            if all(_same_file_key(path) != actual for path in self.executables):
                return (
                    f"executable {creds.exe!r} (resolved {actual!r}) not allowed: "
                    f"{_listing(repr(path) for path in self.executables)}"
                )
        return self._placement_refusal(creds)

    def _placement_refusal(self, creds: Credentials) -> str | None:
        """Why the peer's systemd unit or cgroup is not admitted, or None."""
        if self.units is not None:
            if creds.unit is None:
                return "the peer's systemd unit is unknown and the binding requires one"
            if creds.unit not in self.units:
                return f"unit {creds.unit!r} not in {_listing(repr(u) for u in self.units)}"
        if self.cgroups is not None:
            if creds.cgroup is None:
                return "the peer's cgroup is unknown and the binding requires one"
            if not any(_within(creds.cgroup, tree) for tree in self.cgroups):
                return (
                    f"cgroup {creds.cgroup!r} is not at or below any of "
                    f"{_listing(repr(path) for path in self.cgroups)}"
                )
        return None

    def describe(self) -> str:
        """A one-line summary, e.g. ``uid [0], executable ['/usr/bin/x'], unit ['x.service']``."""
        parts = []
        if self.uids is not None:
            parts.append(f"uid {_listing(self.uids)}")
        if self.gids is not None:
            parts.append(f"gid {_listing(self.gids)}")
        if self.executables is not None:
            parts.append(f"executable {_listing(repr(path) for path in self.executables)}")
        if self.units is not None:
            parts.append(f"unit {_listing(repr(unit) for unit in self.units)}")
        if self.cgroups is not None:
            parts.append(f"cgroup {_listing(repr(path) for path in self.cgroups)}")
        return ", ".join(parts) or "any user"


def _is_reserved(topic: str) -> bool:
    return topic[:1] == "$"


@dataclass(frozen=True, slots=True)
class Grant:
    """What one connection was granted; the broker sends it in Welcome.

    ``table`` is compiled from ``publish``/``subscribe`` on construction, with the topic
    limits ``max_bytes``/``max_levels`` of the broker. The checks validate their input and
    raise :class:`~eventbus.errors.InvalidTopic` for a malformed topic or filter.
    """

    principal: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    admin: bool
    rule_set: str
    max_bytes: int = field(default=DEFAULT_MAX_BYTES, kw_only=True)
    max_levels: int = field(default=DEFAULT_MAX_LEVELS, kw_only=True)
    table: RightsTable = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "publish", tuple(self.publish))
        object.__setattr__(self, "subscribe", tuple(self.subscribe))
        rules = [(f, _PUBLISH) for f in self.publish] + [(f, _SUBSCRIBE) for f in self.subscribe]
        table = RightsTable(rules, max_bytes=self.max_bytes, max_levels=self.max_levels)
        object.__setattr__(self, "table", table)

    def may_publish(self, topic: str) -> bool:
        """Whether a publish rule matches ``topic``; never for a ``$`` (broker) topic."""
        return bool(self.table.may_publish(topic)) and not _is_reserved(topic)

    def may_subscribe(self, topic_filter: str) -> bool:
        """Whether a subscribe rule covers every topic ``topic_filter`` can match."""
        return bool(self.table.may_subscribe(topic_filter))

    def check_publish(self, topic: str) -> None:
        """Raise :class:`~eventbus.errors.PermissionDenied` unless ``may_publish(topic)``."""
        if self.may_publish(topic):
            return
        if _is_reserved(topic):
            why = "topics whose first level starts with '$' are reserved for the broker"
        else:
            why = "no publish rule matches it"
        raise self._denied(f"may not publish to {topic!r}: {why}")

    def check_subscribe(self, topic_filter: str) -> None:
        """Raise :class:`~eventbus.errors.PermissionDenied` unless ``may_subscribe(...)``."""
        if self.may_subscribe(topic_filter):
            return
        raise self._denied(
            f"may not subscribe to {topic_filter!r}: no subscribe rule covers every topic it "
            "matches"
        )

    def check_admin(self, operation: str) -> None:
        """Raise :class:`~eventbus.errors.PermissionDenied` unless the grant has ``admin``."""
        if not self.admin:
            raise self._denied(f"may not {operation}: it needs the admin right")

    def _denied(self, what: str) -> PermissionDenied:
        return PermissionDenied(f"principal {self.principal!r} {what} (rule set {self.rule_set!r})")


@dataclass(frozen=True, slots=True)
class PrincipalRule:
    """One principal of a policy: who may act as it, and the rights it then has."""

    name: str
    binding: Binding
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    admin: bool = False

    def describe(self) -> str:
        """A one-line summary for logs."""
        publish = ", ".join(self.publish) or "-"
        subscribe = ", ".join(self.subscribe) or "-"
        admin = "; admin" if self.admin else ""
        return (
            f"{self.name}: {self.binding.describe()}; publish {publish}; "
            f"subscribe {subscribe}{admin}"
        )


class Policy:
    """A named set of principals; the broker asks it who a new connection may be."""

    __slots__ = ("_grants", "_rules", "name")

    def __init__(self, principals: Iterable[PrincipalRule], *, name: str) -> None:
        """Build a policy; every filter is validated (``InvalidTopic``) and names are unique."""
        self.name = name
        self._rules: dict[str, PrincipalRule] = {}
        self._grants: dict[tuple[str, int, int], Grant] = {}
        for rule in principals:
            if rule.name in self._rules:
                raise ValueError(f"principal {rule.name!r} is defined twice in {name!r}")
            self._rules[rule.name] = rule
            self._grant(rule, DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS)

    def __repr__(self) -> str:
        return f"<Policy {self.name!r}: {', '.join(self._rules)}>"

    def principals(self) -> tuple[str, ...]:
        """The principal names, in the order they were defined."""
        return tuple(self._rules)

    def rule(self, principal: str) -> PrincipalRule:
        """The definition of ``principal``; ``KeyError`` when there is none."""
        return self._rules[principal]

    def authenticate(
        self,
        principal: str,
        creds: Credentials,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_levels: int = DEFAULT_MAX_LEVELS,
    ) -> Grant:
        """The grant of ``principal`` for a peer with ``creds``.

        Raises :class:`~eventbus.errors.PermissionDenied` naming the principal and the reason:
        the principal is unknown, or its binding does not admit the peer (and which
        constraint failed). ``max_bytes``/``max_levels`` are the broker's topic limits.
        """
        rule = self._rules.get(principal)
        if rule is None:
            raise PermissionDenied(
                f"principal {principal!r} is not defined (rule set {self.name!r})"
            )
        refusal = rule.binding.refusal(creds)
        if refusal is not None:
            raise PermissionDenied(
                f"peer (pid {creds.pid}) may not act as principal {principal!r}: {refusal} "
                f"(rule set {self.name!r})"
            )
        return self._grant(rule, max_bytes, max_levels)

    def _grant(self, rule: PrincipalRule, max_bytes: int, max_levels: int) -> Grant:
        # One compiled table per principal and limits, shared by its connections.
        key = (rule.name, max_bytes, max_levels)
        grant = self._grants.get(key)
        if grant is None:
            grant = self._grants[key] = Grant(
                rule.name,
                rule.publish,
                rule.subscribe,
                rule.admin,
                self.name,
                max_bytes=max_bytes,
                max_levels=max_levels,
            )
        return grant

    def describe(self) -> str:
        """A human summary for logs: the rule-set name, then one line per principal."""
        lines = [f"rule set {self.name!r}: {len(self._rules)} principal(s)"]
        lines.extend(f"  {rule.describe()}" for rule in self._rules.values())
        return "\n".join(lines)

    @classmethod
    def from_toml(cls, text: str, *, name: str = "<string>") -> Policy:
        """Parse a TOML policy (format in ``docs/acl.md``).

        ``name`` names the source in errors and is the rule-set name unless ``[policy] name``
        gives one. Raises :class:`~eventbus.errors.PolicyError` whose message starts with
        ``f"{name}:{line}: "`` on the first error found.
        """
        return _PolicyLoader(text, name).load()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read and parse the TOML policy file at ``path``; the rule-set name is the path
        unless the file names one."""
        source = os.fspath(path)
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
        return cls.from_toml(text, name=source)


# The default policy (DESIGN §3). The filters are spelled out here, not taken from
# eventbus.topics, so access control does not depend on the payload registry.
_DEFAULT_COLLECTORS = (
    ("procmond", "process"),
    ("netmond", "network"),
    ("fsmond", "filesystem"),
    ("perfmond", "performance"),
)
_AGENT_PUBLISH = ("control.#",)
_AGENT_SUBSCRIBE = ("events.#", "control.health.#", "$SYS.#")


def _collector_publish(kind: str) -> tuple[str, ...]:
    return (f"events.{kind}.#", "control.health.heartbeat", "control.health.status")


def _collector_subscribe(kind: str) -> tuple[str, ...]:
    return (
        "control.collector.lifecycle",
        "control.collector.config",
        f"control.collector.task.{kind}",
        "control.health.diagnostics",
    )


def default_policy(uid: int | None = None) -> Policy:
    """The embedded default policy: ``agent`` and the four collectors of DESIGN §3.

    ``agent`` publishes ``control.#``, subscribes ``events.#``, ``control.health.#`` and
    ``$SYS.#``, and is admin. The collector of kind K (``procmond`` process, ``netmond``
    network, ``fsmond`` filesystem, ``perfmond`` performance) publishes ``events.K.#``,
    ``control.health.heartbeat`` and ``control.health.status``, and subscribes
    ``control.collector.lifecycle``, ``control.collector.config``,
    ``control.collector.task.K`` and ``control.health.diagnostics``.

    Every principal is bound to ``uid``, by default the broker's own (:func:`os.getuid`).
    On Windows there is no uid: the principals are bound to nothing, which is safe only
    because the transport creates the named pipe reachable by the broker's own user alone.
    """
    if uid is None and hasattr(os, "getuid"):
        uid = os.getuid()
    binding = Binding() if uid is None else Binding(uids=frozenset({uid}))
    rules = [PrincipalRule("agent", binding, _AGENT_PUBLISH, _AGENT_SUBSCRIBE, admin=True)]
    rules.extend(
        PrincipalRule(principal, binding, _collector_publish(kind), _collector_subscribe(kind))
        for principal, kind in _DEFAULT_COLLECTORS
    )
    return Policy(rules, name=DEFAULT_RULE_SET)


# --- TOML policy files -------------------------------------------------------------------

_ROLE_KEYS = frozenset({"publish", "subscribe", "admin"})
_PRINCIPAL_KEYS = _ROLE_KEYS | {
    "uid",
    "gid",
    "executable",
    "unit",
    "cgroup",
    "any_user",
    "roles",
}
_TOP_LEVEL = frozenset({"policy", "roles", "principals"})
_POLICY_KEYS = frozenset({"name"})
_MAX_ID = 2**32 - 1

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BASIC_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"')
_LITERAL_KEY = re.compile(r"'([^']*)'")
_SYNTAX_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")

_KeyPath = tuple[str, ...]


def _read_key(line: str, pos: int) -> tuple[_KeyPath, int] | None:
    """The dotted key starting at ``line[pos]`` and the position after it, if there is one."""
    parts: list[str] = []
    while True:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        for pattern in (_BASIC_KEY, _LITERAL_KEY, _BARE_KEY):
            match = pattern.match(line, pos)
            if match is not None:
                parts.append(match.group(match.lastindex or 0))
                pos = match.end()
                break
        else:
            return None
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == ".":
            pos += 1
            continue
        return tuple(parts), pos


class _KeyLines:
    """Where each table and key of a TOML text is first defined (tomllib gives no positions).

    Every ``[table]`` header and ``key = value`` line is recorded under its full key path,
    together with each prefix of it not seen before, so a path resolves to the line that
    defines it; a path inside an inline table or a value resolves to its nearest recorded
    ancestor.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[_KeyPath, int] = {}
        self.last = max(1, len(text.splitlines()))
        table: _KeyPath = ()
        in_string: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2:
                    in_string = None
                continue
            stripped = line.lstrip()
            if stripped.startswith("["):
                header = _read_key(stripped, 2 if stripped.startswith("[[") else 1)
                if header is not None:
                    table = header[0]
                    self._record(table, number)
                continue
            assignment = _read_key(stripped, 0)
            if assignment is not None and stripped[assignment[1] : assignment[1] + 1] == "=":
                self._record(table + assignment[0], number)
            for quotes in ('"""', "'''"):
                if line.count(quotes) % 2:
                    in_string = quotes

    def _record(self, path: _KeyPath, number: int) -> None:
        for end in range(1, len(path) + 1):
            self._lines.setdefault(path[:end], number)

    def line_of(self, path: _KeyPath) -> int:
        """The line defining ``path`` or its nearest defined ancestor (1 if none is)."""
        for end in range(len(path), 0, -1):
            number = self._lines.get(path[:end])
            if number is not None:
                return number
        return 1


@dataclass(frozen=True, slots=True)
class _Rights:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    admin: bool


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", str: "a string", float: "a float"}
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return names.get(type(value), type(value).__name__)


class _PolicyLoader:
    """Turns the parsed TOML into principals, refusing the first error with its line."""

    def __init__(self, text: str, source: str) -> None:
        self._text = text
        self._source = source
        self._lines = _KeyLines(text)

    def _error(self, path: _KeyPath, message: str) -> PolicyError:
        return PolicyError(f"{self._source}:{self._lines.line_of(path)}: {message}")

    def load(self) -> Policy:
        data = self._parse()
        for key in data:
            if key not in _TOP_LEVEL:
                raise self._error((key,), f"unknown top-level key or table {key!r}")
        rule_set = self._policy_name(data.get("policy", {}))
        roles = {
            role: self._rights(("roles", role), body, _ROLE_KEYS, f"role {role!r}")
            for role, body in self._named_tables(data, "roles").items()
        }
        principals = self._named_tables(data, "principals")
        if not principals:
            raise self._error(("principals",), "the policy defines no principals")
        rules = [self._principal(name, body, roles) for name, body in principals.items()]
        return Policy(rules, name=rule_set)

    def _parse(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = tomllib.loads(self._text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            found = _SYNTAX_POSITION.search(message)
            line = getattr(exc, "lineno", None)
            if found is not None:
                message = message[: found.start()]
                if found.group(2) is not None:
                    message = f"{message} (column {found.group(2)})"
                line = line or (int(found.group(1)) if found.group(1) else self._lines.last)
            raise PolicyError(
                f"{self._source}:{line or self._lines.last}: TOML syntax error: {message}"
            ) from None
        return data

    def _table(self, path: _KeyPath, value: object, what: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self._error(path, f"{what} must be a table, not {_type_name(value)}")
        return value

    def _policy_name(self, value: object) -> str:
        table = self._table(("policy",), value, "[policy]")
        for key in table:
            if key not in _POLICY_KEYS:
                raise self._error(("policy", key), f"unknown key {key!r} in [policy]")
        name = table.get("name", self._source)
        if not isinstance(name, str) or not name:
            raise self._error(("policy", "name"), "[policy] name must be a non-empty string")
        return name

    def _named_tables(self, data: Mapping[str, Any], section: str) -> dict[str, Mapping[str, Any]]:
        tables = self._table((section,), data.get(section, {}), f"[{section}]")
        result = {}
        for name, body in tables.items():
            path = (section, name)
            if not name or any(ch.isspace() or not ch.isprintable() for ch in name):
                raise self._error(path, f"{section} name {name!r} is empty or not printable")
            result[name] = self._table(path, body, f"[{section}.{name}]")
        return result

    def _strings(self, path: _KeyPath, value: object, what: str) -> list[str]:
        if not isinstance(value, list):
            raise self._error(path, f"{what} must be an array of strings, not {_type_name(value)}")
        for index, item in enumerate(value, start=1):
            if not isinstance(item, str):
                raise self._error(
                    path, f"{what} must be an array of strings; item {index} is {_type_name(item)}"
                )
        return value

    def _rights(
        self, path: _KeyPath, body: Mapping[str, Any], allowed: frozenset[str], what: str
    ) -> _Rights:
        for key in body:
            if key not in allowed:
                raise self._error((*path, key), f"unknown key {key!r} in {what}")
        publish = self._filters((*path, "publish"), body.get("publish", []), f"{what} publish")
        subscribe = self._filters(
            (*path, "subscribe"), body.get("subscribe", []), f"{what} subscribe"
        )
        admin = body.get("admin", False)
        if not isinstance(admin, bool):
            raise self._error(
                (*path, "admin"), f"{what} admin must be true or false, not {_type_name(admin)}"
            )
        return _Rights(tuple(publish), tuple(subscribe), admin)

    def _filters(self, path: _KeyPath, value: object, what: str) -> list[str]:
        filters = self._strings(path, value, what)
        for topic_filter in filters:
            try:
                validate_filter(topic_filter)
            except InvalidTopic as exc:
                raise self._error(path, f"{what}: {exc}") from None
            if path[-1] == "publish" and _is_reserved(topic_filter):
                raise self._error(
                    path,
                    f"{what}: filter {topic_filter!r} can never match: topics whose first "
                    "level starts with '$' are reserved for the broker",
                )
        return filters

    def _principal(
        self, name: str, body: Mapping[str, Any], roles: Mapping[str, _Rights]
    ) -> PrincipalRule:
        path = ("principals", name)
        what = f"principal {name!r}"
        own = self._rights(path, body, _PRINCIPAL_KEYS, what)
        publish, subscribe, admin = list(own.publish), list(own.subscribe), own.admin
        role_path = (*path, "roles")
        for role_name in self._strings(role_path, body.get("roles", []), f"{what} roles"):
            role = roles.get(role_name)
            if role is None:
                raise self._error(role_path, f"{what} refers to unknown role {role_name!r}")
            publish.extend(role.publish)
            subscribe.extend(role.subscribe)
            admin = admin or role.admin
        return PrincipalRule(
            name,
            self._binding(path, body, what),
            tuple(dict.fromkeys(publish)),
            tuple(dict.fromkeys(subscribe)),
            admin,
        )

    def _binding(self, path: _KeyPath, body: Mapping[str, Any], what: str) -> Binding:
        any_user = body.get("any_user", False)
        if not isinstance(any_user, bool):
            raise self._error(
                (*path, "any_user"),
                f"{what} any_user must be true or false, not {_type_name(any_user)}",
            )
        uids = self._ids((*path, "uid"), body.get("uid"), f"{what} uid", _user_id)
        gids = self._ids((*path, "gid"), body.get("gid"), f"{what} gid", _group_id)
        executables = self._executables((*path, "executable"), body.get("executable"), what)
        units = self._names((*path, "unit"), body.get("unit"), f"{what} unit", _unit_problem)
        cgroups = self._names(
            (*path, "cgroup"), body.get("cgroup"), f"{what} cgroup", _cgroup_problem
        )
        binding = Binding(uids, gids, executables, units, cgroups)
        if any_user and not binding.unrestricted:
            raise self._error(
                (*path, "any_user"),
                f"{what}: any_user = true contradicts its uid/gid/executable/unit/cgroup "
                "binding; remove one",
            )
        if not any_user and binding.unrestricted:
            raise self._error(
                path,
                f"{what} has no binding: give uid, gid, executable, unit or cgroup, or set "
                "any_user = true to let any local user act as it",
            )
        return binding

    def _values(self, path: _KeyPath, value: object, what: str) -> list[object]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self._error(path, f"{what} must not be empty (omit the key for no constraint)")
        return items

    def _ids(
        self, path: _KeyPath, value: object, what: str, resolve: Callable[[str], int]
    ) -> frozenset[int] | None:
        if value is None:
            return None
        ids = set()
        for item in self._values(path, value, what):
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise self._error(path, f"{what} must be integers or names, not {_type_name(item)}")
            if isinstance(item, int):
                if not 0 <= item <= _MAX_ID:
                    raise self._error(path, f"{what} {item} is out of range 0..{_MAX_ID}")
                ids.add(item)
                continue
            try:
                ids.add(resolve(item))
            except LookupError as exc:
                raise self._error(path, f"{what}: {exc.args[0]}") from None
        return frozenset(ids)

    def _names(
        self, path: _KeyPath, value: object, what: str, problem: Callable[[str], str | None]
    ) -> frozenset[str] | None:
        """A string or an array of strings, each of which ``problem`` finds nothing wrong with."""
        if value is None:
            return None
        names = set()
        for item in self._values(path, value, what):
            if not isinstance(item, str):
                raise self._error(path, f"{what} must be strings, not {_type_name(item)}")
            found = problem(item)
            if found is not None:
                raise self._error(path, f"{what}: {found}")
            names.add(item)
        return frozenset(names)

    def _executables(self, path: _KeyPath, value: object, what: str) -> frozenset[str] | None:
        if value is None:
            return None
        paths = set()
        for item in self._values(path, value, f"{what} executable"):
            if not isinstance(item, str):
                raise self._error(
                    path, f"{what} executable must be paths (strings), not {_type_name(item)}"
                )
            if not os.path.isabs(item):
                raise self._error(path, f"{what} executable {item!r} is not an absolute path")
            paths.add(item)
        return frozenset(paths)


def _user_id(name: str) -> int:
    if sys.platform == "win32":
        raise LookupError(f"user name {name!r} cannot be resolved on Windows; use a number")
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise LookupError(f"unknown user {name!r}") from None


def _group_id(name: str) -> int:
    if sys.platform == "win32":
        raise LookupError(f"group name {name!r} cannot be resolved on Windows; use a number")
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise LookupError(f"unknown group {name!r}") from None
