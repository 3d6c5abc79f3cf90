"""A connection's outbound side at the broker, pure-Python reference of ``_fast/_outbox.pyx``.

:class:`Outbox` holds the frames queued for one connection during a pass of the event loop
(written together by :meth:`Outbox.flush`) and the flow control of events: everything
queued counts against ``outbound_limit``; an event that would pass it, or any event while
the connection is being shed, is dropped for this connection only and counted against its
stream, to be reported in-band ahead of the next event delivered. :func:`fan_out` hands one
encoded event to every connection a publish reaches. These are the broker's per-delivery
steps; everything around them (answers, drop reports, the drain watch) is the broker's
``Session``, a subclass.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

from .v1 import frames_pb2

__all__ = ["FLUSH_AT", "MAX_DROPPED_STREAMS", "Outbox", "fan_out", "write_out"]

FLUSH_AT: Final = 64 * 1024
"""Queued bytes at which a connection's frames are written out within a pass."""

MAX_DROPPED_STREAMS: Final = 1024
"""Streams itemised in one Dropped report; drops beyond are counted in its total only (the
subscriber then reports those gaps as lost in transit: over-reported, never hidden)."""

Stream = tuple[int, str]


class Outbox:
    """Frames queued for one connection and the accounting of its dropped events.

    ``write`` hands bytes to the transport, ``buffered()`` says how many it still holds;
    ``dirty`` (shared by every connection of a broker) lists the outboxes with frames
    queued, so the broker flushes only those.
    """

    __slots__ = (
        "_buffered",
        "_dirty",
        "_out",
        "_out_bytes",
        "_write",
        "bytes_out",
        "closed",
        "dropped_pending",
        "dropped_streams",
        "dropped_total",
        "instance_id",
        "messages_out",
        "outbound_limit",
        "publisher_field",
        "shedding",
    )

    def __init__(
        self,
        write: Callable[[bytes], Any],
        buffered: Callable[[], int],
        outbound_limit: int,
        dirty: list[Any],
    ) -> None:
        self._write = write
        self._buffered = buffered
        self.outbound_limit = outbound_limit
        self._dirty = dirty
        self._out: list[bytes] = []
        self._out_bytes = 0
        self.bytes_out = 0
        self.messages_out = 0
        self.dropped_pending = 0
        self.dropped_total = 0
        #: (instance id, topic) -> events of that stream dropped since the last report.
        self.dropped_streams: dict[Stream, int] = {}
        #: Every event is dropped until the buffer is down to a quarter of the limit.
        self.shedding = False
        self.closed = False
        #: The client's instance id from Hello (0: it does not number its publishes).
        self.instance_id = 0
        #: EventEnvelope.publisher of the events this connection publishes, encoded once.
        self.publisher_field = b""

    @property
    def queued(self) -> int:
        """Bytes waiting for this peer: in the transport, and queued in this pass."""
        return self._buffered() + self._out_bytes

    def deliver(self, data: bytes, stream: Stream | None = None) -> bool:
        """Queue one encoded event; False when it was dropped for this connection.

        ``stream`` is the event's (publisher instance id, topic) when it is numbered, so a
        drop can be reported against the sequence it leaves a gap in.
        """
        if self.closed:
            return False
        if self._out_bytes >= FLUSH_AT:
            # A long pass must not count against the limit what the socket would take now.
            self.flush()
        queued = self._buffered() + self._out_bytes
        if self.shedding:
            if queued > self.outbound_limit // 4:
                self._drop(stream)
                return False
            self.shedding = False
        if queued + len(data) > self.outbound_limit:
            self._drop(stream)
            return False
        if self.dropped_pending:
            # Ahead of the event, so the subscriber knows the gaps before it are drops.
            self.queue(self.drop_report())
        self.queue(data)
        self.messages_out += 1
        return True

    def queue(self, data: bytes) -> None:
        """Queue ``data`` for the next flush, whatever the limit."""
        if not self._out:
            self._dirty.append(self)
        self._out.append(data)
        self._out_bytes += len(data)
        self.bytes_out += len(data)

    def flush(self) -> None:
        """Hand what was queued to the transport: one write for many frames."""
        out = self._out
        if out:
            self._write(out[0] if len(out) == 1 else b"".join(out))
            self._out = []
            self._out_bytes = 0

    def _drop(self, stream: Stream | None) -> None:
        self.dropped_pending += 1
        self.dropped_total += 1
        if stream is not None:
            streams = self.dropped_streams
            if stream in streams:
                streams[stream] += 1
            elif len(streams) < MAX_DROPPED_STREAMS:
                streams[stream] = 1
        self.dropped()

    def dropped(self) -> None:
        """Called after each drop; the broker's session watches the drain from here."""

    def drop_report(self) -> bytes:
        """The Dropped frame (length-prefixed) of the drops since the last report, which
        it resets; the total counts every drop of the connection."""
        count, self.dropped_pending = self.dropped_pending, 0
        streams = [
            frames_pb2.DroppedStream(instance_id=instance_id, topic=topic, count=n)
            for (instance_id, topic), n in self.dropped_streams.items()
        ]
        self.dropped_streams = {}
        dropped = frames_pb2.Dropped(count=count, total=self.dropped_total, streams=streams)
        body = frames_pb2.Frame(dropped=dropped).SerializeToString()
        return struct.pack("<I", len(body)) + body


def _hand(session: Outbox, data: bytes, reply_to: str, stream: Stream | None) -> int:
    """1: delivered to ``session``, 0: dropped for it, -1: it is closing."""
    if session.closed:  # being disconnected: neither delivered nor a loss
        return -1
    if not session.deliver(data, stream):
        return 0
    if reply_to:
        session.allow_reply(reply_to)  # type: ignore[attr-defined]
    return 1


def fan_out(
    sessions: Sequence[Outbox],
    groups: Sequence[Any],
    data: bytes,
    reply_to: str,
    stream: Stream | None,
) -> tuple[int, int]:
    """Deliver ``data`` to every connection of ``sessions`` and to the member each of
    ``groups`` picks (``group.pick()``), each connection once; returns ``(delivered,
    dropped)`` counted in connections. Closed connections count as neither. With
    ``reply_to``, each connection that gets the event may answer there once
    (``allow_reply``)."""
    counts = [0, 0, 0]  # by outcome: dropped, delivered, closing
    for session in sessions:
        counts[_hand(session, data, reply_to, stream)] += 1
    if groups:
        # A member that is also a plain subscriber, or in two matching groups, gets it once.
        seen = set(sessions)
        for group in groups:
            session = group.pick()
            if session not in seen:
                seen.add(session)
                counts[_hand(session, data, reply_to, stream)] += 1
    return counts[1], counts[0]


def write_out(dirty: list[Any], watch: bool) -> list[Any] | None:
    """Flush every outbox of ``dirty`` (one write each) and empty it. With ``watch``, the
    ones holding over half their ``outbound_limit`` before their write (``queued``) are
    returned, in order, when there are any; else None."""
    fed = None
    if watch:
        fed = [box for box in dirty if box.queued > box.outbound_limit >> 1] or None
    for box in dirty:
        box.flush()
    dirty.clear()
    return fed
