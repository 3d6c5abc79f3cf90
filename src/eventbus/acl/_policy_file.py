"""Reading a TOML policy file into a :class:`~eventbus.acl.Policy` (format in ``docs/acl.md``).

The text is parsed by ``tomllib`` (``tomli`` before Python 3.11); this module then validates
the parsed tables completely and refuses the first error with a
:class:`~eventbus.errors.PolicyError` naming the source and the line. ``tomllib`` reports no
positions for values, so the line of a key or table is looked up in a small index of the
text's ``[table]`` headers and ``key =`` lines; a syntax error takes its line from
``tomllib``'s own message.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._backend import validate_filter
from ..errors import InvalidTopic, PolicyError
from ..transport import sid_problem
from ._grant import is_reserved
from ._policy import Binding, Policy, PrincipalRule, cgroup_problem, unit_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

if sys.platform != "win32":
    import grp
    import pwd

__all__ = ["KeyLines", "load_policy", "parse_toml"]


def load_policy(text: str, source: str, *, foreign: frozenset[str] = frozenset()) -> Policy:
    """The policy in the TOML ``text``; ``source`` names it in errors and is the default name.

    ``foreign`` names top-level tables that belong to someone else (the broker's
    ``[broker]``) and are skipped. Raises :class:`~eventbus.errors.PolicyError` whose
    message starts with ``f"{source}:{line}: "`` on the first error found.
    """
    return _PolicyLoader(text, source, foreign).load()


def parse_toml(text: str, source: str) -> tuple[dict[str, Any], KeyLines]:
    """The parsed ``text`` and where its keys are, for a loader of another table of the
    same file; a syntax error raises :class:`~eventbus.errors.PolicyError` with its line."""
    loader = _PolicyLoader(text, source)
    return loader._parse(), loader._lines


_ROLE_KEYS = frozenset({"publish", "subscribe", "admin"})
_PRINCIPAL_KEYS = _ROLE_KEYS | {
    "uid",
    "gid",
    "executable",
    "unit",
    "cgroup",
    "sid",
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


class KeyLines:
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

    def __init__(self, text: str, source: str, foreign: frozenset[str] = frozenset()) -> None:
        self._text = text
        self._source = source
        self._foreign = foreign
        self._lines = KeyLines(text)

    def _error(self, path: _KeyPath, message: str) -> PolicyError:
        return PolicyError(f"{self._source}:{self._lines.line_of(path)}: {message}")

    def load(self) -> Policy:
        data = self._parse()
        for key in data:
            if key not in _TOP_LEVEL and key not in self._foreign:
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
        except RecursionError:
            # tomllib recurses once per level of nested arrays and inline tables.
            line = self._first_line_raising(RecursionError)
            raise PolicyError(
                f"{self._source}:{line}: TOML syntax error: arrays or inline tables nested "
                "too deeply"
            ) from None
        except ValueError as exc:
            # tomllib lets int()'s refusal through: an integer past Python's digit limit.
            line = self._first_line_raising(type(exc))
            raise PolicyError(f"{self._source}:{line}: TOML value error: {exc}") from None
        return data

    def _first_line_raising(self, error: type[BaseException]) -> int:
        """The first line at which the text up to it raises exactly ``error``.

        For the errors tomllib raises without a position; found by bisection, as a longer
        prefix that contains the culprit raises it too.
        """
        lines = self._text.split("\n")
        low, high = 1, len(lines)
        while low < high:
            middle = (low + high) // 2
            try:
                tomllib.loads("\n".join(lines[:middle]))
            except Exception as exc:
                if type(exc) is error:
                    high = middle
                    continue
            low = middle + 1
        return low

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
            if path[-1] == "publish" and is_reserved(topic_filter):
                raise self._error(
                    path,
                    f"{what}: filter {topic_filter!r} can never match: topics whose first "
                    "level starts with '$' are reserved for the broker (except $SYS.bridge.#)",
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
        units = self._names((*path, "unit"), body.get("unit"), f"{what} unit", unit_problem)
        cgroups = self._names(
            (*path, "cgroup"), body.get("cgroup"), f"{what} cgroup", cgroup_problem
        )
        sids = self._names((*path, "sid"), body.get("sid"), f"{what} sid", sid_problem)
        binding = Binding(uids, gids, executables, units, cgroups, sids)
        if any_user and not binding.unrestricted:
            raise self._error(
                (*path, "any_user"),
                f"{what}: any_user = true contradicts its uid/gid/executable/unit/cgroup/sid "
                "binding; remove one",
            )
        if not any_user and binding.unrestricted:
            raise self._error(
                path,
                f"{what} has no binding: give uid, gid, executable, unit, cgroup or sid, or "
                "set any_user = true to let any local user act as it",
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
    if sys.platform != "win32":
        try:
            return pwd.getpwnam(name).pw_uid
        except (KeyError, ValueError):  # ValueError: a name with a NUL byte
            raise LookupError(f"unknown user {name!r}") from None
    raise LookupError(
        f"user name {name!r} cannot be resolved on Windows, where peers have no uid; bind "
        'the account\'s SID instead (sid = "S-1-5-21-...")'
    )


def _group_id(name: str) -> int:
    if sys.platform != "win32":
        try:
            return grp.getgrnam(name).gr_gid
        except (KeyError, ValueError):  # ValueError: a name with a NUL byte
            raise LookupError(f"unknown group {name!r}") from None
    raise LookupError(
        f"group name {name!r} cannot be resolved on Windows, where peers have no gid; bind "
        'the group\'s SID instead (sid = "S-1-5-32-545")'
    )
