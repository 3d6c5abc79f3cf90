"""Gap detection: finding what never arrived.

A client numbers its publishes per topic (``Sequences``, in the core; see docs/broker.md,
"Sequences"); a subscriber remembers the last sequence of each (publisher instance, topic)
and counts a gap that the broker's ``Dropped`` reports do not explain as lost in transit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from .._backend import EventView
from ..v1 import frames_pb2

__all__ = ["GapTracker", "LostCallback"]

log = logging.getLogger("eventbus.client")

LostCallback = Callable[[frames_pb2.ProcessIdentity, int], None]
"""Called with the publisher and how many of its events were lost in transit."""

# Streams whose last sequence a subscriber remembers; past this the least recently used is
# forgotten, and a gap in it then goes unseen once.
MAX_TRACKED_STREAMS = 65_536

_Stream = tuple[int, str]


class GapTracker:
    """What a subscribing client has seen of each stream, and what it found missing."""

    __slots__ = ("_credit", "_last_seen", "lost", "on_lost")

    def __init__(self, on_lost: LostCallback | None) -> None:
        #: Events missing with no Dropped report to explain them.
        self.lost = 0
        self.on_lost = on_lost
        self._last_seen: dict[_Stream, int] = {}
        # Drops the broker reported and no gap has matched yet.
        self._credit: dict[_Stream, int] = {}

    def dropped(self, streams: Iterable[frames_pb2.DroppedStream]) -> None:
        """Take a Dropped report: it always comes before the gaps it explains."""
        credit = self._credit
        for stream in streams:
            key = (stream.instance_id, stream.topic)
            credit[key] = credit.get(key, 0) + stream.count

    def observe(
        self,
        event: EventView,
        instance_id: int,
        sequence: int,
        topic: str,
        subscribed_since: Callable[[str], int],
    ) -> None:
        """Count the gap before this event that no Dropped report explains as lost.

        ``instance_id`` and ``sequence`` are the event's publisher's, read once by the
        caller.

        ``subscribed_since(topic)`` is when this client's plain subscriptions began to
        receive ``topic`` (monotonic ns, 0: not yet known); it decides the first event of
        a stream: one that began later should have been seen from sequence 1.
        """
        key = (instance_id, topic)
        seen = self._last_seen
        last = seen.pop(key, None)  # re-inserted below: the dict stays in order of use
        if last is not None and sequence == last + 1:  # the common case: the next one
            seen[key] = sequence
            return
        if last is None:
            if len(seen) >= MAX_TRACKED_STREAMS:
                del seen[next(iter(seen))]
            since = subscribed_since(topic) if sequence > 1 else 0
            if since and event.publisher.stream_started_ns > since:
                last = 0  # the stream began while subscribed: all of it was due here
            else:
                self._credit.pop(key, None)  # drops before a baseline: nothing to match
        if last is not None and sequence > last + 1:
            gap = sequence - last - 1
            credit = self._credit.pop(key, 0)
            if credit > gap:
                self._credit[key] = credit - gap
            lost = gap - min(gap, credit)
            if lost:
                self._report(event.publisher, topic, lost)
        seen[key] = sequence

    def forget(self, still_received: Callable[[str], bool]) -> None:
        """Stop tracking the topics no longer received: once subscribed again, what was
        published meanwhile is not a loss."""
        for key in [key for key in self._last_seen if not still_received(key[1])]:
            del self._last_seen[key]
            self._credit.pop(key, None)

    def _report(self, publisher: frames_pb2.ProcessIdentity, topic: str, lost: int) -> None:
        self.lost += lost
        log.warning(
            "%d event(s) of %s (pid %d) on %r lost in transit (%d in all)",
            lost,
            publisher.principal or "?",
            publisher.pid,
            topic,
            self.lost,
        )
        if self.on_lost is not None:
            self.on_lost(publisher, lost)
