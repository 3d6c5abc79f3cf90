"""The memory budget: the bytes queued for all connections, and per uid, kept bounded.

Over the budget the broker first pauses reading from its clients, for a bounded time, so
buffers can drain without a loss. If that is not enough it sheds: the connections holding
the most are made to drop their newest events (or are disconnected, under the
``disconnect`` policy) until the rest fit. A uid over its own share is shed the same way at
once. Nothing here can stop the broker: housekeeping and admission run while paused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ._session import Session

__all__ = ["MemoryBudget"]

log = logging.getLogger("eventbus.broker")


class MemoryBudget:
    """Decides when to pause reading, when to resume and whom to shed."""

    __slots__ = ("_paused", "_paused_at", "_shed", "budget", "max_pause", "per_uid")

    def __init__(
        self,
        budget: int,
        per_uid: int,
        max_pause: float,
        shed: Callable[[Session, str], None],
    ) -> None:
        self.budget = budget
        self.per_uid = per_uid
        self.max_pause = max_pause
        self._shed = shed
        self._paused: list[Session] = []
        self._paused_at = 0.0

    @property
    def paused(self) -> bool:
        return bool(self._paused)

    def check(self, sessions: Iterable[Session], now: float) -> None:
        """Look at what every connection holds; pause, resume or shed accordingly."""
        held = [(s.queued, s) for s in sessions if not s.shedding and not s.closed]
        total = sum(queued for queued, _ in held)
        total -= self._shed_uids_over_quota(held)
        if total > self.budget:
            if not self._paused:
                self._pause([s for _, s in held], now, total)
            elif now - self._paused_at >= self.max_pause:
                self._shed_heaviest(held, total)
                self._resume(now)
        elif self._paused and total <= self.budget // 2:
            log.info("queued bytes back to %d: resuming reading", total)
            self._resume(now)

    def _shed_uids_over_quota(self, held: list[tuple[int, Session]]) -> int:
        """Shed within each uid over its quota; returns the bytes no longer counted."""
        by_uid: dict[int | None, list[tuple[int, Session]]] = {}
        for entry in held:
            by_uid.setdefault(entry[1].uid, []).append(entry)
        freed = 0
        for uid, entries in by_uid.items():
            queued = sum(q for q, _ in entries)
            if queued > self.per_uid:
                reason = f"uid {uid} holds {queued} queued bytes, over its quota of {self.per_uid}"
                freed += self._shed_until(entries, queued, self.per_uid, reason)
        return freed

    def _shed_heaviest(self, held: list[tuple[int, Session]], total: int) -> None:
        reason = f"{total} bytes queued in all, over the memory budget of {self.budget}"
        self._shed_until([e for e in held if not e[1].shedding], total, self.budget, reason)

    def _shed_until(
        self, entries: list[tuple[int, Session]], total: int, limit: int, reason: str
    ) -> int:
        freed = 0
        for queued, session in sorted(entries, key=lambda e: e[0], reverse=True):
            if total - freed <= limit:
                break
            if session.shedding or session.closed:
                continue
            self._shed(session, reason)
            freed += queued
        return freed

    def _pause(self, sessions: list[Session], now: float, total: int) -> None:
        log.warning(
            "queued %d bytes, over the budget of %d: pausing reading for up to %g s",
            total,
            self.budget,
            self.max_pause,
        )
        self._paused_at = now
        for session in sessions:
            if not session.paused:
                session.conn.pause_reading()
                session.paused = True
                self._paused.append(session)

    def _resume(self, now: float) -> None:
        # The silence of a paused peer was the broker's doing: do not count it.
        credit = now - self._paused_at
        for session in self._paused:
            session.last_seen += credit
            if session.paused and not session.closed:
                session.conn.resume_reading()
            session.paused = False
        self._paused = []
