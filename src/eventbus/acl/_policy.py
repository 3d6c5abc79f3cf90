"""The broker's side of access control: who a peer may be (its binding), and the policy.

The broker learns a peer's credentials from the OS at accept time; the peer's Hello only
names the principal it wants to be. :meth:`Policy.authenticate` grants that principal when the
policy binds it to credentials the peer actually has, and returns the
:class:`~eventbus.acl.Grant` the connection then works under. Everything is default deny, and
every denial names the principal, the input and the rule set, so an operator can tell which
policy said no and why.

A policy comes from :func:`default_policy` (the hierarchy of DESIGN §3, every principal bound
to the broker's own uid, or its user SID on Windows) or from a TOML file (:meth:`Policy.load`,
read by ``eventbus.acl._policy_file``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS
from ..errors import EventBusError, PermissionDenied
from ..transport import local_credentials, sid_problem
from ._grant import Grant

__all__ = [
    "DEFAULT_RULE_SET",
    "Binding",
    "Credentials",
    "Policy",
    "PrincipalRule",
    "cgroup_problem",
    "default_policy",
    "unit_problem",
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

    @property
    def sid(self) -> str | None: ...

    @property
    def group_sids(self) -> frozenset[str]: ...


def _same_file_key(path: str) -> str:
    # Both sides are resolved so a symlinked install path and /proc's resolved exe agree.
    return os.path.normcase(os.path.realpath(path))


def _listing(values: Iterable[int] | Iterable[str]) -> str:
    return "[" + ", ".join(str(value) for value in sorted(values)) + "]"


_UNIT_SUFFIXES = (".service", ".scope")


def unit_problem(unit: str) -> str | None:
    """Why ``unit`` can never name a peer's unit, or None if it can."""
    if "/" in unit or not unit.endswith(_UNIT_SUFFIXES) or unit in _UNIT_SUFFIXES:
        # the transport only ever reports a cgroup path component ending so
        return f"unit {unit!r} is not a systemd unit name ending in .service or .scope"
    return None


def cgroup_problem(path: str) -> str | None:
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
    ``/a``, ``/ab`` is not). ``sids`` are Windows SIDs in string form (``S-1-5-21-...``),
    satisfied by the peer token's user SID or any of its enabled group SIDs.
    ``Binding()`` admits anyone: a policy file has to say ``any_user = true`` to get it, so
    it never happens by omission.
    """

    uids: frozenset[int] | None = None
    gids: frozenset[int] | None = None
    executables: frozenset[str] | None = None
    units: frozenset[str] | None = None
    cgroups: frozenset[str] | None = None
    sids: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name in ("uids", "gids", "executables", "units", "cgroups", "sids"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        for path in self.executables or ():
            if not os.path.isabs(path):
                raise ValueError(f"executable binding {path!r} is not an absolute path")
        problems = [unit_problem(unit) for unit in self.units or ()]
        problems += [cgroup_problem(path) for path in self.cgroups or ()]
        problems += [sid_problem(sid) for sid in self.sids or ()]
        for problem in problems:
            if problem is not None:
                raise ValueError(f"binding: {problem}")

    @property
    def unrestricted(self) -> bool:
        """Whether this binding admits every peer."""
        return all(
            value is None
            for value in (
                self.uids,
                self.gids,
                self.executables,
                self.units,
                self.cgroups,
                self.sids,
            )
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
        if self.sids is not None:
            held_sids = set(creds.group_sids)
            if creds.sid is not None:
                held_sids.add(creds.sid)
            if not held_sids:
                return "the peer's SIDs are unknown and the binding requires one"
            if held_sids.isdisjoint(self.sids):
                who = creds.sid or "unknown"
                return f"user SID {who} and its groups' SIDs not in {_listing(self.sids)}"
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
        if self.sids is not None:
            parts.append(f"sid {_listing(self.sids)}")
        return ", ".join(parts) or "any user"


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
                f"principal {principal!r} is not defined (rule set {self.name!r}); "
                f"it defines: {', '.join(self._rules) or 'none'}"
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
        # Imported here: only a broker given a policy file needs the TOML parser.
        from ._policy_file import load_policy

        return load_policy(text, name)

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
# The fleet bridge (docs/fleet.md): forwards events, health and presence up, brings control
# down, and reports its own state (spool, overflow) under $SYS.bridge.
_BRIDGE_PUBLISH = ("control.#", "$SYS.bridge.#")
_BRIDGE_SUBSCRIBE = ("events.#", "control.health.#", "$SYS.client.#")


def _collector_publish(kind: str) -> tuple[str, ...]:
    return (f"events.{kind}.#", "control.health.heartbeat", "control.health.status")


def _collector_subscribe(kind: str) -> tuple[str, ...]:
    return (
        "control.collector.lifecycle",
        "control.collector.config",
        f"control.collector.task.{kind}",
        "control.health.diagnostics",
    )


def default_policy(uid: int | None = None, *, sid: str | None = None) -> Policy:
    """The embedded default policy: ``agent`` and the four collectors of DESIGN §3.

    ``agent`` publishes ``control.#``, subscribes ``events.#``, ``control.health.#`` and
    ``$SYS.#``, and is admin. The collector of kind K (``procmond`` process, ``netmond``
    network, ``fsmond`` filesystem, ``perfmond`` performance) publishes ``events.K.#``,
    ``control.health.heartbeat`` and ``control.health.status``, and subscribes
    ``control.collector.lifecycle``, ``control.collector.config``,
    ``control.collector.task.K`` and ``control.health.diagnostics``. ``bridge`` (the fleet
    bridge) publishes ``control.#`` and ``$SYS.bridge.#`` and subscribes ``events.#``,
    ``control.health.#`` and ``$SYS.client.#``.

    Every principal is bound to ``uid`` and/or ``sid`` as given; with neither, to the
    broker's own uid (:func:`os.getuid`), or on Windows, which has no uids, to the user
    SID of the broker's own token (`EventBusError` if that cannot be read).
    """
    if uid is None and sid is None:
        if sys.platform == "win32":
            sid = local_credentials().sid
            if sid is None:
                raise EventBusError(
                    "the default policy binds every principal to this process's user SID, "
                    "which cannot be read"
                )
        else:
            uid = os.getuid()
    binding = Binding(
        uids=None if uid is None else frozenset({uid}),
        sids=None if sid is None else frozenset({sid}),
    )
    rules = [PrincipalRule("agent", binding, _AGENT_PUBLISH, _AGENT_SUBSCRIBE, admin=True)]
    rules.extend(
        PrincipalRule(principal, binding, _collector_publish(kind), _collector_subscribe(kind))
        for principal, kind in _DEFAULT_COLLECTORS
    )
    rules.append(PrincipalRule("bridge", binding, _BRIDGE_PUBLISH, _BRIDGE_SUBSCRIBE))
    return Policy(rules, name=DEFAULT_RULE_SET)
