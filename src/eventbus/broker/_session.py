"""One client connection as the broker sees it: identity, grant, subscriptions, counters.

Outbound flow control lives here. Everything queued for a connection counts against its
outbound limit. An event that would pass it (or any event while the broker sheds the
connection for the memory budget) is dropped for this subscriber only, counted per stream,
and reported in-band (``Dropped``) ahead of the next event delivered or as soon as the
buffer has drained. Answers are never dropped: a connection whose unread answers pass the
limit (all it has unread is over twice the limit) is given up on (``on_overflow`` with
``answer=True``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..acl import Grant
from ..protocol import INBOX_PREFIX, encode_frame, encode_publisher, error_frame
from ..transport import Connection, PeerCredentials
from ..v1 import frames_pb2

__all__ = ["Session"]
_MAX_REPLY_GRANTS = 1024
# Streams itemised in one Dropped report; drops beyond are counted in its total only (the
# subscriber then reports those gaps as lost in transit: over-reported, never hidden).
_MAX_DROPPED_STREAMS = 1024
# Queued bytes at which a connection's frames are written out within a pass.
_FLUSH_AT = 64 * 1024


class Session:
    """Broker-side state of one connection."""

    __slots__ = (
        "_dirty",
        "_drain_task",
        "_dropped_streams",
        "_out",
        "_out_bytes",
        "bytes_in",
        "bytes_out",
        "client_name",
        "closed",
        "conn",
        "connected_at_ns",
        "connection_id",
        "denied",
        "dropped_pending",
        "dropped_total",
        "filter_refs",
        "grant",
        "identity",
        "inbox",
        "instance_id",
        "last_seen",
        "messages_in",
        "messages_out",
        "on_overflow",
        "outbound_limit",
        "paused",
        "peer",
        "publisher_field",
        "reply_grants",
        "shedding",
        "subscriptions",
        "uid",
    )

    def __init__(
        self,
        conn: Connection,
        connection_id: int,
        outbound_limit: int,
        on_overflow: Callable[[Session, bool], bool],
        dirty: list[Session],
    ) -> None:
        self.conn = conn
        self.connection_id = connection_id
        self.peer: PeerCredentials = conn.peer
        self.uid = conn.peer.uid
        #: The client's instance id from Hello (0: it does not number its publishes).
        self.instance_id = 0
        self.grant: Grant | None = None
        self.client_name = ""
        self.identity = frames_pb2.ProcessIdentity(
            pid=conn.peer.pid or 0,
            uid=conn.peer.uid or 0,
            gid=conn.peer.gid or 0,
            connection_id=connection_id,
        )
        self.inbox = f"{INBOX_PREFIX}{connection_id}."
        # Inboxes this connection may answer once: reply_to of requests delivered to it.
        self.reply_grants: dict[str, None] = {}
        # subscription id -> (filter, group); group "" for a plain subscription.
        self.subscriptions: dict[int, tuple[str, str]] = {}
        # plain filter -> how many of this connection's subscriptions use it.
        self.filter_refs: dict[str, int] = {}
        self.outbound_limit = outbound_limit
        # Frames queued during one pass of the event loop, written together by flush();
        # ``dirty`` (the broker's) lists the sessions that have some.
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._dirty = dirty
        #: EventEnvelope.publisher, encoded once (see protocol.encode_event).
        self.publisher_field = b""
        # Called when an event (answer=False) or an answer (True) does not fit; returns True
        # to keep the connection.
        self.on_overflow = on_overflow
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.dropped_pending = 0
        self.dropped_total = 0
        #: Operations the policy refused this connection (publish, subscribe, admin).
        self.denied = 0
        # (instance id, topic) -> events of that stream dropped since the last report.
        self._dropped_streams: dict[tuple[int, str], int] = {}
        #: Set by the broker's memory budget: every event is dropped until the buffer drains.
        self.shedding = False
        self.connected_at_ns = time.time_ns()
        self.last_seen = 0.0
        self.closed = False
        self.paused = False
        self._drain_task: asyncio.Task[None] | None = None
        # Pause writing (so drain() waits) well before the limit, resume lower still.
        conn.set_write_buffer_limits(high=outbound_limit // 2, low=outbound_limit // 4)

    @property
    def principal(self) -> str:
        return self.grant.principal if self.grant is not None else ""

    @property
    def queued(self) -> int:
        """Bytes waiting for this peer: in the transport, and queued in this pass."""
        return self.conn.write_buffer_size() + self._out_bytes

    def authenticate(self, grant: Grant, client_name: str, instance_id: int) -> None:
        self.grant = grant
        self.client_name = client_name
        self.instance_id = instance_id
        self.identity.principal = grant.principal
        self.identity.client_name = client_name
        self.identity.instance_id = instance_id
        self.publisher_field = encode_publisher(self.identity)

    def allow_reply(self, inbox: str) -> None:
        grants = self.reply_grants
        if len(grants) >= _MAX_REPLY_GRANTS:
            del grants[next(iter(grants))]
        grants[inbox] = None

    def take_reply_grant(self, topic: str) -> bool:
        """Use up the right to answer a request on ``topic``, if this connection has it."""
        if topic in self.reply_grants:
            del self.reply_grants[topic]
            return True
        return False

    def send(self, data: bytes) -> None:
        """Queue an answer (SubAck, PubAck, Pong, Error, ...).

        Answers are never dropped, and they count against the outbound limit: they push
        events out first. Events alone never pass the limit, so a connection with more than
        twice the limit unread holds over a limit's worth of unread answers: it asks and
        does not read, and is given up on.
        """
        if self.closed:
            return
        if self.queued + len(data) > 2 * self.outbound_limit:
            self.on_overflow(self, True)
            return
        self._queue(data)

    def send_error(self, request_id: int, code: int, message: str) -> None:
        """Answer a request (``request_id`` > 0) with an Error; the connection stays."""
        self.send(encode_frame(error_frame(code, message, request_id)))  # type: ignore[arg-type]

    def send_last(self, data: bytes) -> None:
        """Queue the last frame the connection gets (an Error before closing), whatever
        the limit: it is small and nothing follows it."""
        if not self.closed:
            self._queue(data)

    def deliver(self, data: bytes, stream: tuple[int, str] | None = None) -> bool:
        """Queue one encoded event; False when it was dropped for this subscriber.

        ``stream`` is the event's (publisher instance id, topic) when it is numbered, so a
        drop can be reported against the sequence it leaves a gap in.
        """
        if self.closed:
            return False
        if self._out_bytes >= _FLUSH_AT:
            # A long pass must not count against the limit what the socket would take now.
            self.flush()
        queued = self.queued
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
            self._queue(self._dropped_report())
        self._queue(data)
        self.messages_out += 1
        return True

    def shed(self) -> None:
        """Drop every event for this connection until its buffer is down to a quarter of
        the limit (the broker's memory budget is passed and this connection holds the most)."""
        self.shedding = True
        self._watch_drain()

    def _drop(self, stream: tuple[int, str] | None) -> None:
        self.dropped_pending += 1
        self.dropped_total += 1
        if stream is not None:
            streams = self._dropped_streams
            if stream in streams:
                streams[stream] += 1
            elif len(streams) < _MAX_DROPPED_STREAMS:
                streams[stream] = 1
        if self.on_overflow(self, False):
            self._watch_drain()

    def _watch_drain(self) -> None:
        if self._drain_task is None and not self.closed:
            self._drain_task = asyncio.get_running_loop().create_task(self._report_drops())

    def _dropped_report(self) -> bytes:
        count, self.dropped_pending = self.dropped_pending, 0
        streams = [
            frames_pb2.DroppedStream(instance_id=instance_id, topic=topic, count=n)
            for (instance_id, topic), n in self._dropped_streams.items()
        ]
        self._dropped_streams = {}
        dropped = frames_pb2.Dropped(count=count, total=self.dropped_total, streams=streams)
        return encode_frame(frames_pb2.Frame(dropped=dropped))

    def _queue(self, data: bytes) -> None:
        if not self._out:
            self._dirty.append(self)
        self._out.append(data)
        self._out_bytes += len(data)
        self.bytes_out += len(data)

    def flush(self) -> None:
        """Hand what was queued to the transport: one write for many frames."""
        out = self._out
        if out:
            self.conn.write(out[0] if len(out) == 1 else b"".join(out))
            self._out = []
            self._out_bytes = 0

    async def _report_drops(self) -> None:
        try:
            await self.conn.drain()
        except Exception:
            return
        finally:
            self._drain_task = None
        if self.queued <= self.outbound_limit // 4:
            self.shedding = False
        if self.dropped_pending and not self.closed:
            self._queue(self._dropped_report())
            self.flush()

    def info(self) -> frames_pb2.ClientInfo:
        """This connection as ``ListReply`` and ``$SYS`` stats describe it."""
        return frames_pb2.ClientInfo(
            identity=self.identity,
            subscriptions=[
                frames_pb2.SubscriptionInfo(subscription_id=i, filter=f, group=g)
                for i, (f, g) in self.subscriptions.items()
            ],
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            dropped=self.dropped_total,
            queued_bytes=self.queued,
            connected_at_ns=self.connected_at_ns,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            denied=self.denied,
        )

    def close(self) -> None:
        self.closed = True
        if self._drain_task is not None:
            self._drain_task.cancel()
            self._drain_task = None
