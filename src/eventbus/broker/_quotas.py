"""Quotas per uid and per connection, in dbus-broker's manner: no identity can exhaust the
broker by opening connections or subscriptions, and each refusal names the quota."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import QuotaExceeded
from ._session import Session

__all__ = ["Quotas"]


@dataclass
class _Usage:
    connections: int = 0
    subscriptions: int = 0


def _who(uid: int | None) -> str:
    return "peers of unknown uid" if uid is None else f"uid {uid}"


class Quotas:
    """Counts what each uid holds and refuses what would pass a limit."""

    __slots__ = (
        "_usage",
        "connections_per_uid",
        "subscriptions_per_connection",
        "subscriptions_per_uid",
    )

    def __init__(
        self,
        connections_per_uid: int,
        subscriptions_per_uid: int,
        subscriptions_per_connection: int,
    ) -> None:
        self.connections_per_uid = connections_per_uid
        self.subscriptions_per_uid = subscriptions_per_uid
        self.subscriptions_per_connection = subscriptions_per_connection
        self._usage: dict[int | None, _Usage] = {}

    def usage(self, uid: int | None) -> tuple[int, int]:
        """(connections, subscriptions) that ``uid`` holds now."""
        usage = self._usage.get(uid)
        return (0, 0) if usage is None else (usage.connections, usage.subscriptions)

    def admit(self, session: Session) -> None:
        """Count a new connection; raises :class:`QuotaExceeded` when its uid has its fill."""
        usage = self._usage.setdefault(session.uid, _Usage())
        if usage.connections >= self.connections_per_uid:
            raise QuotaExceeded(
                f"{_who(session.uid)} already has {usage.connections} connections, "
                f"the quota (max_connections_per_uid = {self.connections_per_uid})"
            )
        usage.connections += 1

    def subscribe(self, session: Session) -> None:
        """Count one more subscription of ``session``, or raise :class:`QuotaExceeded`."""
        held = len(session.subscriptions)
        if held >= self.subscriptions_per_connection:
            raise QuotaExceeded(
                f"this connection already has {held} subscriptions, the quota "
                f"(max_subscriptions_per_connection = {self.subscriptions_per_connection})"
            )
        usage = self._usage[session.uid]
        if usage.subscriptions >= self.subscriptions_per_uid:
            raise QuotaExceeded(
                f"{_who(session.uid)} already has {usage.subscriptions} subscriptions, the "
                f"quota (max_subscriptions_per_uid = {self.subscriptions_per_uid})"
            )
        usage.subscriptions += 1

    def unsubscribe(self, session: Session, count: int = 1) -> None:
        self._usage[session.uid].subscriptions -= count

    def release(self, session: Session) -> None:
        """Forget an admitted connection and every subscription it held."""
        usage = self._usage[session.uid]
        usage.connections -= 1
        usage.subscriptions -= len(session.subscriptions)
        if not usage.connections:
            del self._usage[session.uid]
