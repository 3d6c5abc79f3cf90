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

from .._backend import Outbox
from ..acl import Grant
from ..protocol import INBOX_PREFIX, encode_frame, encode_publisher, error_frame
from ..transport import Connection, PeerCredentials
from ..v1 import frames_pb2

__all__ = ["Session"]
_MAX_REPLY_GRANTS = 1024


class Session(Outbox):
    """Broker-side state of one connection; its outbound queue and per-delivery flow
    control are the core's :class:`~eventbus._outbox.Outbox`."""

    __slots__ = (
        "_drain_task",
        "bytes_in",
        "client_name",
        "conn",
        "connected_at_ns",
        "connection_id",
        "denied",
        "filter_refs",
        "grant",
        "identity",
        "inbox",
        "last_seen",
        "messages_in",
        "on_overflow",
        "paced",
        "paused",
        "peer",
        "reply_grants",
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
        super().__init__(conn.write, conn.write_buffer_size, outbound_limit, dirty)
        self.conn = conn
        self.connection_id = connection_id
        self.peer: PeerCredentials = conn.peer
        self.uid = conn.peer.uid
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
        # Called when an event (answer=False) or an answer (True) does not fit; returns True
        # to keep the connection.
        self.on_overflow = on_overflow
        self.messages_in = 0
        self.bytes_in = 0
        #: Operations the policy refused this connection (publish, subscribe, admin).
        self.denied = 0
        self.connected_at_ns = time.time_ns()
        self.last_seen = 0.0
        self.paused = False
        #: False while held publishers would wait in vain: it stayed over half its limit for
        #: a whole pause; it takes its drops until it has drained.
        self.paced = True
        self._drain_task: asyncio.Task[None] | None = None
        # Pause writing (so drain() waits) well before the limit, resume lower still.
        conn.set_write_buffer_limits(high=outbound_limit // 2, low=outbound_limit // 4)

    @property
    def principal(self) -> str:
        return self.grant.principal if self.grant is not None else ""

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
        self.queue(data)

    def send_error(self, request_id: int, code: int, message: str) -> None:
        """Answer a request (``request_id`` > 0) with an Error; the connection stays."""
        self.send(encode_frame(error_frame(code, message, request_id)))  # type: ignore[arg-type]

    def send_last(self, data: bytes) -> None:
        """Queue the last frame the connection gets (an Error before closing), whatever
        the limit: it is small and nothing follows it."""
        if not self.closed:
            self.queue(data)

    def shed(self) -> None:
        """Drop every event for this connection until its buffer is down to a quarter of
        the limit (the broker's memory budget is passed and this connection holds the most)."""
        self.shedding = True
        self._watch_drain()

    def dropped(self) -> None:
        if self.on_overflow(self, False):
            self._watch_drain()

    def stalled(self) -> None:
        """A publisher was held for this connection as long as it may be: no more holds
        until its buffer has drained."""
        self.paced = False
        self._watch_drain()

    def _watch_drain(self) -> None:
        if self._drain_task is None and not self.closed:
            self._drain_task = asyncio.get_running_loop().create_task(self._report_drops())

    async def _report_drops(self) -> None:
        try:
            await self.conn.drain()
        except Exception:
            return
        finally:
            self._drain_task = None
        self.paced = True  # drained to the low watermark, or never past the high one
        if self.queued <= self.outbound_limit // 4:
            self.shedding = False
        if self.dropped_pending and not self.closed:
            self.queue(self.drop_report())
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
