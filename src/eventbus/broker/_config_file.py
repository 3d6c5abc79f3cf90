"""One TOML file for the broker: its ``[broker]`` settings and its access-control policy.

The ``[broker]`` table takes the fields of :class:`BrokerConfig` under their own names
(``socket_group`` is spelled ``group``, like the flag); the rest of the file is a policy
file as ``docs/acl.md`` describes it. A file with no ``[policy]``, ``[roles]`` or
``[principals]`` keeps the embedded default policy. Every error is a
:class:`~eventbus.errors.ConfigError` whose message starts with ``f"{source}:{line}: "``.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import fields
from typing import Any

from ..acl._policy_file import KeyLines, load_policy, parse_toml
from ..errors import ConfigError, PolicyError
from .config import BrokerConfig

__all__ = ["BROKER_KEYS", "config_from_toml", "load_config"]

_POLICY_TABLES = frozenset({"policy", "roles", "principals"})
# Set by the command line or the process's environment, never by a file.
_NOT_IN_FILE = frozenset({"policy", "listen_fd", "socket_group"})
_FIELD_TYPES: dict[str, tuple[type, ...]] = {}
for _field in fields(BrokerConfig):
    if _field.name in _NOT_IN_FILE:
        continue
    default = _field.default
    if isinstance(default, bool):
        _FIELD_TYPES[_field.name] = (bool,)
    elif isinstance(default, int):
        _FIELD_TYPES[_field.name] = (int,)
    elif isinstance(default, float):
        _FIELD_TYPES[_field.name] = (int, float)
    else:  # str, or str | None
        _FIELD_TYPES[_field.name] = (str,)
_FIELD_TYPES["group"] = (str, int)

#: The keys a ``[broker]`` table may hold.
BROKER_KEYS: tuple[str, ...] = tuple(_FIELD_TYPES)

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_FIELD_IN_MESSAGE = re.compile(r"^BrokerConfig\.(\w+)")


def load_config(path: str | os.PathLike[str]) -> BrokerConfig:
    """Read the broker configuration file at ``path`` (see the module docstring)."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {source!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text: {exc}") from None
    return config_from_toml(text, source)


def config_from_toml(text: str, source: str = "<string>") -> BrokerConfig:
    """The broker configuration in the TOML ``text``; ``source`` names it in errors."""
    try:
        data, lines = parse_toml(text, source)
        policy = None
        if _POLICY_TABLES & data.keys():
            policy = load_policy(text, source, foreign=frozenset({"broker"}))
        elif not data.keys() <= {"broker"}:
            unknown = next(key for key in data if key != "broker")
            raise ConfigError(
                f"{source}:{lines.line_of((unknown,))}: unknown top-level key or table "
                f"{unknown!r} (expected [broker], [policy], [roles], [principals])"
            )
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    settings = _broker_settings(data.get("broker", {}), source, lines)
    try:
        return BrokerConfig(policy=policy, **settings)
    except ConfigError as exc:
        found = _FIELD_IN_MESSAGE.match(str(exc))
        key = found.group(1) if found else ""
        key = "group" if key == "socket_group" else key
        line = lines.line_of(("broker", key)) if key else lines.line_of(("broker",))
        raise ConfigError(
            f"{source}:{line}: [broker] {str(exc).removeprefix('BrokerConfig.')}"
        ) from None


def _broker_settings(table: object, source: str, lines: KeyLines) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}:{lines.line_of(('broker',))}: [broker] must be a table")
    settings: dict[str, Any] = {}
    for key, value in table.items():
        line = lines.line_of(("broker", key))
        allowed = _FIELD_TYPES.get(key)
        if allowed is None:
            raise ConfigError(
                f"{source}:{line}: unknown key {key!r} in [broker]; the keys are: "
                + ", ".join(BROKER_KEYS)
            )
        # TOML booleans are not integers here, although Python's are.
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            expected = " or ".join(_TYPE_NAMES[t] for t in allowed)
            raise ConfigError(f"{source}:{line}: [broker] {key} must be {expected}, not {value!r}")
        if key == "group":
            _check_group(value, f"{source}:{line}")  # type: ignore[arg-type]
            settings["socket_group"] = value
        elif allowed == (int, float):
            settings[key] = float(value)  # type: ignore[arg-type]
        else:
            settings[key] = value
    return settings


def _check_group(group: str | int, where: str) -> None:
    """A group name must exist now, as the policy's user names must: the broker resolves it
    when it binds the socket, and a typo should fail at load, naming the line."""
    if isinstance(group, int) or sys.platform == "win32":
        return  # a pipe has no group: the transport ignores it with a warning
    import grp

    try:
        grp.getgrnam(group)
    except (KeyError, ValueError):
        raise ConfigError(f"{where}: [broker] group {group!r} does not exist") from None
