"""The grant: what one connection may do, and the denial it gets when it tries more.

The broker computes a :class:`Grant` when it authenticates a peer and sends it in Welcome;
the client keeps the same object to refuse a forbidden publish or subscribe locally, before
it crosses the socket. This module is all the client needs of access control, so it imports
nothing of the broker's side (policies, bindings, the TOML policy file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._backend import PUBLISH as _PUBLISH
from .._backend import SUBSCRIBE as _SUBSCRIBE
from .._backend import RightsTable
from .._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS
from ..errors import PermissionDenied

__all__ = ["DELEGATED_PREFIX", "Grant", "is_reserved"]

DELEGATED_PREFIX = "$SYS.bridge."
"""The one ``$`` subtree the broker leaves to a client: the bridge reports its own state
there (docs/fleet.md), and only a principal whose publish rule names it may publish."""


def is_reserved(topic: str) -> bool:
    """Whether ``topic`` (or a filter) starts with ``$`` outside :data:`DELEGATED_PREFIX`:
    such topics only the broker publishes."""
    return topic[:1] == "$" and not topic.startswith(DELEGATED_PREFIX)


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
        return bool(self.table.may_publish(topic)) and not is_reserved(topic)

    def may_subscribe(self, topic_filter: str) -> bool:
        """Whether a subscribe rule covers every topic ``topic_filter`` can match."""
        return bool(self.table.may_subscribe(topic_filter))

    def check_publish(self, topic: str) -> None:
        """Raise :class:`~eventbus.errors.PermissionDenied` unless ``may_publish(topic)``."""
        if self.may_publish(topic):
            return
        if is_reserved(topic):
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
