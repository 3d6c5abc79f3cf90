"""Getting the connection back: the backoff policy, and the publishes kept meanwhile."""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["NO_RECONNECT", "Backlog", "Reconnect"]

log = logging.getLogger("eventbus.client")


@dataclass(frozen=True)
class Reconnect:
    """How a client gets its connection back: exponential backoff with jitter, bounded.

    While disconnected, unconfirmed publishes are kept (up to ``buffer_bytes``) and sent in
    order once the connection is back; what does not fit is counted in ``Client.unsent``
    and logged, never dropped silently. Subscriptions are registered again.
    """

    enabled: bool = True
    initial_delay: float = 0.05
    max_delay: float = 5.0
    #: Attempts in a row before giving up; ``None`` keeps trying until ``close()``.
    max_attempts: int | None = None
    buffer_bytes: int = 8 << 20

    def delays(self) -> Iterator[float]:
        """The wait before each attempt: doubling up to ``max_delay``, each drawn from
        [½, 1] of its step so that clients of a restarted broker do not all come at once."""
        step = self.initial_delay
        attempt = 0
        while self.max_attempts is None or attempt < self.max_attempts:
            attempt += 1
            yield step * random.uniform(0.5, 1.0)
            step = min(step * 2, self.max_delay)


NO_RECONNECT = Reconnect(enabled=False)


class Backlog:
    """Encoded publishes waiting for the connection, in order, bounded in bytes."""

    __slots__ = ("_bytes", "_frames", "limit", "unsent")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Publishes refused because the backlog was full, or never sent at close.
        self.unsent = 0
        self._frames: deque[bytes] = deque()
        self._bytes = 0

    def keep(self, data: bytes, topic: str) -> None:
        if self._bytes + len(data) > self.limit:
            self.unsent += 1
            log.warning(
                "reconnect buffer full (%d bytes): publish to %r not sent (%d unsent in all)",
                self._bytes,
                topic,
                self.unsent,
            )
            return
        self._frames.append(data)
        self._bytes += len(data)

    def take(self) -> list[bytes]:
        """Everything kept, oldest first; the backlog is empty afterwards."""
        frames = list(self._frames)
        self._frames.clear()
        self._bytes = 0
        return frames

    def abandon(self) -> None:
        """The client closed: what is still kept will never be sent."""
        if self._frames:
            self.unsent += len(self._frames)
            log.warning("%d buffered publish(es) never sent: the client closed", len(self._frames))
            self.take()
