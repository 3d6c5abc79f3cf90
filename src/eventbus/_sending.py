"""What a client sends on one connection, pure-Python reference of ``_fast/_sending.pyx``.

A :class:`Sender` writes the first frame of a loop turn at once and queues the ones after
it, handed to the transport in one write at the end of the turn (or at once past
``write_at`` bytes), so a lone event waits for nothing and a burst of publishes costs two
system calls. :meth:`Sender.publish` is the client's common case, an
unconfirmed publish, in one call: the topic checked against the rights the broker granted,
numbered in its stream (:class:`Sequences`), encoded and queued. It takes only what needs no
more than that: a topic that starts with ``$``, one the rights do not grant (a reply inbox
among them), a payload that is neither ``bytes`` nor ``bytearray``, or a sender that is not
:attr:`~Sender.publishing` is left to the client (the answer is -1), which raises, answers
or buffers it as ``Client.publish`` documents. An invalid topic raises ``InvalidTopic``, a
frame over the broker's limit ``FrameTooLarge``, as they do there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

from ._encode import encode_publish
from ._rights import PUBLISH, RightsTable

__all__ = ["WRITE_AT", "Sender", "Sequences"]

WRITE_AT: Final = 64 * 1024
"""Queued bytes written at once rather than at the end of the loop turn."""


class Sequences:
    """The next sequence of each topic a client publishes to, and when each began; kept
    across reconnections, so subscribers can tell a gap in what it sent."""

    __slots__ = ("_last", "_started")

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._started: dict[str, int] = {}

    def next(self, topic: str) -> tuple[int, int]:
        """The event's sequence, and when sequence 1 of its topic was numbered (monotonic
        ns: one clock for every process of the host)."""
        sequence = self._last.get(topic, 0) + 1
        self._last[topic] = sequence
        if sequence == 1:
            self._started[topic] = time.monotonic_ns()
        return sequence, self._started[topic]


class Sender:
    """One connection's outgoing frames, coalesced, and its unconfirmed publishes."""

    __slots__ = (
        "_call_soon",
        "_drain_needed",
        "_handle",
        "_max_frame",
        "_out",
        "_sequences",
        "_table",
        "_write",
        "_write_at",
        "publishing",
        "queued",
    )

    def __init__(
        self,
        conn: Any,
        table: RightsTable,
        sequences: Sequences,
        max_frame: int | None = None,
        write_at: int = WRITE_AT,
    ) -> None:
        # ``conn`` is a transport Connection; only write and drain_needed are used.
        self._write: Callable[[bytes], None] = conn.write
        self._drain_needed: Callable[[], bool] = conn.drain_needed
        self._call_soon = asyncio.get_running_loop().call_soon
        self._table = table
        self._sequences = sequences
        self._max_frame = max_frame
        self._write_at = write_at
        self._out: list[bytes] = []
        self._handle: asyncio.Handle | None = None
        #: Bytes queued and not yet handed to the transport.
        self.queued = 0
        #: Whether :meth:`publish` takes publishes (the client turns it on once connected).
        self.publishing = False

    def send(self, data: bytes) -> bool:
        """Send a frame: the first of a loop turn is written at once, the ones after it in
        the same turn together at its end (or past ``write_at`` bytes), all in order.

        Returns whether the transport's drain could wait or raise now (it is over its high
        watermark, or closed): a publisher awaits nothing otherwise.
        """
        if self._handle is None:
            # Nothing written or queued this turn: no wait for the end of it (a lone event's
            # latency); the handle, scheduled once it is written, makes what follows in
            # this turn queue behind it.
            self._write(data)
            self._handle = self._call_soon(self.write_out)
        else:
            self._out.append(data)
            self.queued += len(data)
            if self.queued >= self._write_at:
                self.write_out()
        return self._drain_needed()

    def publish(self, topic: str, payload: object) -> int:
        """Queue an unconfirmed publish: 0, or 1 when the drain could wait or raise now
        (as :meth:`send`); -1 leaves it to the client, untouched."""
        if (
            not self.publishing
            or type(topic) is not str
            or topic[:1] in ("$", "")
            or not (self._table.mask(topic) & PUBLISH)
        ):
            return -1
        if type(payload) is not bytes:
            if type(payload) is not bytearray:
                return -1
            payload = bytes(payload)
        sequence, started = self._sequences.next(topic)
        data = encode_publish(
            topic,
            payload,
            sequence=sequence,
            stream_started_ns=started,
            max_frame=self._max_frame,
        )
        return 1 if self.send(data) else 0

    def write_out(self) -> None:
        """Hand every queued frame to the transport now, in one write."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        out = self._out
        if out:
            self._out = []
            self.queued = 0
            self._write(out[0] if len(out) == 1 else b"".join(out))

    def discard(self) -> None:
        """The connection is gone: what was queued goes nowhere, and nothing more is taken."""
        self.publishing = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._out = []
        self.queued = 0
