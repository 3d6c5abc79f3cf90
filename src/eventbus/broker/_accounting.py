"""What each principal did: its live connections' counters plus those of the closed ones.

Counters of a connection live on its :class:`Session` while it is open; when it closes they
are added to its principal's totals here, so a per-principal total never goes down (what
Prometheus counters need). Nothing here runs per message: a snapshot is summed on demand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from ._session import Session

__all__ = ["Accounting", "PrincipalUsage"]


@dataclass
class PrincipalUsage:
    """One principal's counters (totals since the broker started) and gauges (now)."""

    #: Gauges: the principal's connections open now, their subscriptions and queued bytes.
    clients: int = 0
    subscriptions: int = 0
    queued_bytes: int = 0
    #: Counters, closed connections included.
    connections: int = 0
    frames_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0
    denied: int = 0

    def add_counters(self, session: Session) -> None:
        self.connections += 1
        self.frames_in += session.messages_in
        self.messages_out += session.messages_out
        self.bytes_in += session.bytes_in
        self.bytes_out += session.bytes_out
        self.dropped += session.dropped_total
        self.denied += session.denied


_COUNTERS = tuple(
    f.name
    for f in fields(PrincipalUsage)
    if f.name not in ("clients", "subscriptions", "queued_bytes")
)


class Accounting:
    """Totals per principal of the connections that have closed."""

    __slots__ = ("_closed",)

    def __init__(self) -> None:
        self._closed: dict[str, PrincipalUsage] = {}

    def retire(self, session: Session) -> None:
        """Keep a closing connection's counters (called once, as it is forgotten)."""
        usage = self._closed.get(session.principal)
        if usage is None:
            usage = self._closed[session.principal] = PrincipalUsage()
        usage.add_counters(session)

    def snapshot(self, sessions: Iterable[Session]) -> dict[str, PrincipalUsage]:
        """Every principal seen so far, with the live ``sessions`` counted in."""
        result: dict[str, PrincipalUsage] = {}
        for principal, closed in self._closed.items():
            usage = result[principal] = PrincipalUsage()
            for name in _COUNTERS:
                setattr(usage, name, getattr(closed, name))
        for session in sessions:
            live = result.get(session.principal)
            if live is None:
                live = result[session.principal] = PrincipalUsage()
            live.add_counters(session)
            live.clients += 1
            live.subscriptions += len(session.subscriptions)
            live.queued_bytes += session.queued
        return result
