"""One connection to the broker: the Hello/Welcome handshake and what the Welcome said.

A :class:`Link` is the per-connection state, made whole by the handshake and replaced whole
when the client reconnects, so nothing of an old connection lingers on a new one. What the
client sends goes through its :class:`~eventbus._backend.Sender`: the first frame of a turn
of the event loop is written at once and the rest of that turn's in one more write, so a
lone event waits for nothing and a burst of publishes costs two system calls, not one each;
an unconfirmed publish is checked, numbered and encoded by the core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .._backend import Sender, Sequences
from ..acl._grant import Grant
from ..errors import ProtocolError, Timeout
from ..framestream import FrameStream
from ..protocol import (
    DEFAULT_MAX_FRAME,
    INBOX_PREFIX,
    PROTOCOL_VERSION,
    decode_frame,
    encode_frame,
    exception_for,
)
from ..transport import DEFAULT_HIGH_WATER, Connection
from ..v1 import frames_pb2

__all__ = ["INBOX_PREFIX", "Link", "Opener"]

Opener = Callable[[], Awaitable[Connection]]
"""Opens a fresh connection to the broker (used again for every reconnection)."""


class Link:
    """A connection that completed the handshake, with the broker's Welcome."""

    __slots__ = (
        "conn",
        "grant",
        "limits",
        "pending",
        "sender",
        "stream",
        "welcome",
    )

    def __init__(
        self,
        stream: FrameStream,
        welcome: frames_pb2.Welcome,
        pending: list[bytes],
        sequences: Sequences,
    ) -> None:
        self.stream = stream
        self.conn = stream.conn
        self.welcome = welcome
        self.limits: frames_pb2.Limits = welcome.limits
        #: Frames that arrived in the same read as the Welcome, still to be handled.
        self.pending = pending
        stream.resize(max(welcome.limits.max_frame_bytes, DEFAULT_MAX_FRAME))
        rights = welcome.rights
        #: What the broker granted; used to refuse forbidden operations before sending.
        self.grant = Grant(
            principal=welcome.identity.principal,
            publish=tuple(rights.publish),
            subscribe=tuple(rights.subscribe),
            admin=rights.admin,
            rule_set=rights.rule_set,
            max_bytes=max(welcome.limits.max_topic_bytes, 1),
            max_levels=max(welcome.limits.max_topic_levels, 1),
        )
        #: The connection's outgoing frames; the client turns its publishing on and off.
        self.sender = Sender(self.conn, self.grant.table, sequences, self.max_frame)

    def send(self, data: bytes) -> bool:
        """Queue a frame; it is written, in order, by the end of this loop turn.

        Returns whether :meth:`drain` could wait or raise now (the transport is over its
        high watermark, or closed): a publisher awaits nothing otherwise.
        """
        return self.sender.send(data)

    def write_out(self) -> None:
        """Hand every queued frame to the transport now, in one write."""
        self.sender.write_out()

    async def drain(self) -> None:
        """Wait only while the transport is over its high watermark."""
        await self.conn.drain()

    async def flush(self) -> None:
        """Wait until everything sent so far has left for the socket."""
        self.write_out()
        conn = self.conn
        if conn.write_buffer_size():
            # Watermarks of zero make drain() wait for an empty buffer, then back to normal.
            conn.set_write_buffer_limits(high=0, low=0)
            try:
                await conn.drain()
            finally:
                conn.set_write_buffer_limits(high=DEFAULT_HIGH_WATER)

    def discard(self) -> None:
        """The connection is gone: what was queued for it goes nowhere."""
        self.sender.discard()

    @property
    def max_frame(self) -> int | None:
        """The largest frame the broker takes (None: the default)."""
        return self.welcome.limits.max_frame_bytes or None

    @property
    def connection_id(self) -> int:
        return self.welcome.connection_id

    @property
    def inbox(self) -> str:
        """The prefix of this connection's own reply inbox."""
        return f"{INBOX_PREFIX}{self.welcome.connection_id}."

    @classmethod
    async def open(
        cls,
        opener: Opener,
        *,
        principal: str,
        client_name: str,
        instance_id: int,
        timeout: float,
        sequences: Sequences,
    ) -> Link:
        """Open a connection and run the handshake; raises the broker's refusal typed."""
        conn = await opener()
        hello = frames_pb2.Hello(
            protocol_version=PROTOCOL_VERSION,
            principal=principal,
            client_name=client_name,
            instance_id=instance_id,
        )
        conn.write(encode_frame(frames_pb2.Frame(hello=hello)))
        # Before the Welcome the broker's limits are unknown: the default frame limit applies.
        stream = FrameStream(conn)
        try:
            bodies = await asyncio.wait_for(stream.first(), timeout)
            frame = decode_frame(bodies[0])
        except asyncio.TimeoutError:
            conn.abort()
            raise Timeout(f"no Welcome from the broker within {timeout:g} s") from None
        except BaseException:
            conn.abort()
            raise
        kind = frame.WhichOneof("body")
        if kind == "error":
            conn.close()
            raise exception_for(frame.error)
        if kind != "welcome":
            conn.abort()
            raise ProtocolError(f"expected Welcome from the broker, got {kind}")
        return cls(stream, frame.welcome, bodies[1:], sequences)
