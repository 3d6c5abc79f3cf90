"""One client connection as the broker sees it: identity, grant, subscriptions, counters.

Outbound flow control lives here: every event is written at once unless the connection's
queued bytes would pass the limit, in which case that event is dropped for this subscriber
only, counted, and reported in-band (``Dropped``) as soon as the buffer has drained.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..acl import Grant
from ..protocol import encode_frame, encode_publisher
from ..transport import Connection, PeerCredentials
from ..v1 import frames_pb2

__all__ = ["INBOX_PREFIX", "Session"]

#: Connection N receives replies on ``$INBOX.N.<anything>``.
INBOX_PREFIX = "$INBOX."
_MAX_REPLY_GRANTS = 1024
# Queued bytes at which a connection's frames are written out within a pass.
_FLUSH_AT = 64 * 1024


class Session:
    """Broker-side state of one connection."""

    __slots__ = (
        "_dirty",
        "_drain_task",
        "_out",
        "_out_bytes",
        "bytes_in",
        "bytes_out",
        "client_name",
        "closed",
        "conn",
        "connected_at_ns",
        "connection_id",
        "dropped_pending",
        "dropped_total",
        "filter_refs",
        "grant",
        "identity",
        "inbox",
        "last_seen",
        "messages_in",
        "messages_out",
        "on_overflow",
        "outbound_limit",
        "paused",
        "peer",
        "publisher_field",
        "reply_grants",
        "subscriptions",
    )

    def __init__(
        self,
        conn: Connection,
        connection_id: int,
        outbound_limit: int,
        on_overflow: Callable[[Session], bool],
        dirty: list[Session],
    ) -> None:
        self.conn = conn
        self.connection_id = connection_id
        self.peer: PeerCredentials = conn.peer
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
        # Called when an event does not fit; returns True to keep the connection.
        self.on_overflow = on_overflow
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.dropped_pending = 0
        self.dropped_total = 0
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

    def authenticate(self, grant: Grant, client_name: str) -> None:
        self.grant = grant
        self.client_name = client_name
        self.identity.principal = grant.principal
        self.identity.client_name = client_name
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
        """Queue a control frame (answers, errors): never subject to the event limit."""
        if not self.closed:
            self._queue(data)

    def deliver(self, data: bytes) -> bool:
        """Queue one encoded event; False when it was dropped for this subscriber."""
        if self.closed:
            return False
        if self._out_bytes >= _FLUSH_AT:
            # A long pass must not count against the limit what the socket would take now.
            self.flush()
        conn = self.conn
        if conn.write_buffer_size() + self._out_bytes + len(data) > self.outbound_limit:
            self.dropped_pending += 1
            self.dropped_total += 1
            if self.on_overflow(self) and self._drain_task is None:
                self._drain_task = asyncio.get_running_loop().create_task(self._report_drops())
            return False
        self._queue(data)
        self.messages_out += 1
        return True

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
        if self.dropped_pending and not self.closed:
            count, self.dropped_pending = self.dropped_pending, 0
            frame = frames_pb2.Frame(
                dropped=frames_pb2.Dropped(count=count, total=self.dropped_total)
            )
            self.send(encode_frame(frame))
            self.flush()

    def close(self) -> None:
        self.closed = True
        if self._drain_task is not None:
            self._drain_task.cancel()
            self._drain_task = None
