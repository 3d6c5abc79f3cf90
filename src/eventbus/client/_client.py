"""The async client: connect, publish, subscribe, list; typed errors throughout.

``connect`` performs the Hello/Welcome handshake and returns a :class:`Client`. Its reader
task routes each delivered event to the local subscriptions whose filters match (with the
same trie the broker uses), so the broker can encode an event once for every subscriber.
A subscription that is not consumed fills up to ``max_pending`` events; then the client stops
reading, the broker's outbound buffer for this connection fills, and the broker drops and
reports (``Dropped``) instead of slowing everyone else down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
from collections.abc import Callable, Iterable

from google.protobuf.message import Message

from .._backend import Sequences, validate_filter, validate_topic
from ..acl._grant import Grant
from ..errors import ConnectionLost, Timeout
from ..protocol import (
    INBOX_PREFIX,
    encode_frame,
    encode_publish,
)
from ..transport import connect as transport_connect
from ..transport import default_address
from ..v1 import frames_pb2
from ._envelope import Envelope
from ._inbound import Inbound
from ._lifecycle import Lifecycle, subscribe_frame
from ._link import Link, Opener
from ._reconnect import NO_RECONNECT, Backlog, Reconnect
from ._routes import Routes
from ._sequences import GapTracker, LostCallback
from ._subscription import Ended, Subscription

__all__ = ["NO_RECONNECT", "Client", "Reconnect", "connect"]

log = logging.getLogger("eventbus.client")

_Frame = frames_pb2.Frame
_DEFAULT_MAX_PENDING = 10_000


class Client(Lifecycle):
    """A connection to the broker under one principal. Use :func:`connect` to make one."""

    def __init__(
        self,
        link: Link,
        opener: Opener,
        *,
        principal: str,
        client_name: str,
        instance_id: int,
        timeout: float = 5.0,
        max_pending: int = _DEFAULT_MAX_PENDING,
        on_dropped: Callable[[int], None] | None = None,
        on_lost: LostCallback | None = None,
        reconnect: Reconnect = NO_RECONNECT,
        sequences: Sequences,
    ) -> None:
        self._opener = opener
        self._principal = principal
        self._client_name = client_name
        self._timeout = timeout
        self.reconnect = reconnect
        self.max_pending = max_pending
        #: Random id that, with a sequence per topic, numbers this client's publishes; kept
        #: across reconnections so subscribers can see a gap in what it sent.
        self.instance_id = instance_id
        self._sequences = sequences
        self._gaps = GapTracker(on_lost)
        #: Times the connection was re-established.
        self.reconnects = 0
        self._link = link
        self._routes = Routes(link.limits)
        self._inbound = Inbound(self._routes, self._gaps, on_dropped, lambda: self._closing)
        self._inbox_id = 0
        self._ids = itertools.count(1)
        self._backlog = Backlog(reconnect.buffer_bytes)
        self._closed: BaseException | None = None
        self._closing = False
        self._connected = asyncio.Event()
        self._reconnecting: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._attach(link)
        self._connected.set()
        link.sender.publishing = True

    @classmethod
    async def open(
        cls,
        opener: Opener,
        *,
        principal: str,
        client_name: str | None = None,
        timeout: float = 5.0,
        max_pending: int = _DEFAULT_MAX_PENDING,
        on_dropped: Callable[[int], None] | None = None,
        on_lost: LostCallback | None = None,
        reconnect: Reconnect = NO_RECONNECT,
    ) -> Client:
        """Connect with ``opener`` and complete the handshake as ``principal``."""
        name = client_name or f"{principal}[{os.getpid()}]"
        instance_id = random.getrandbits(64) or 1
        sequences = Sequences()
        link = await Link.open(
            opener,
            principal=principal,
            client_name=name,
            instance_id=instance_id,
            timeout=timeout,
            sequences=sequences,
        )
        return cls(
            link,
            opener,
            principal=principal,
            client_name=name,
            instance_id=instance_id,
            timeout=timeout,
            max_pending=max_pending,
            on_dropped=on_dropped,
            on_lost=on_lost,
            reconnect=reconnect,
            sequences=sequences,
        )

    # -- what the current connection's Welcome said ----------------------------------------

    @property
    def welcome(self) -> frames_pb2.Welcome:
        return self._link.welcome

    @property
    def connection_id(self) -> int:
        return self._link.connection_id

    @property
    def identity(self) -> frames_pb2.ProcessIdentity:
        """This client as the broker verified it (what its events carry as publisher)."""
        return self._link.welcome.identity

    @property
    def limits(self) -> frames_pb2.Limits:
        return self._link.limits

    @property
    def grant(self) -> Grant:
        """The rights the broker granted; forbidden operations are refused before sending."""
        return self._link.grant

    @property
    def principal(self) -> str:
        return self._link.grant.principal

    @property
    def dropped(self) -> int:
        """Events the broker reported lost on the way to this client (``Dropped``)."""
        return self._inbound.dropped

    @property
    def on_dropped(self) -> Callable[[int], None] | None:
        return self._inbound.on_dropped

    @on_dropped.setter
    def on_dropped(self, callback: Callable[[int], None] | None) -> None:
        self._inbound.on_dropped = callback

    @property
    def unsent(self) -> int:
        """Publishes never sent: the reconnect buffer was full, or the client closed first."""
        return self._backlog.unsent

    @property
    def lost(self) -> int:
        """Events missing from a publisher's sequence with no ``Dropped`` report to explain
        them: lost in transit (a broker crash, a reconnection window)."""
        return self._gaps.lost

    @property
    def on_lost(self) -> LostCallback | None:
        return self._gaps.on_lost

    @on_lost.setter
    def on_lost(self, callback: LostCallback | None) -> None:
        self._gaps.on_lost = callback

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (False while reconnecting and after close)."""
        return self._connected.is_set() and self._closed is None

    # -- public API ------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes | bytearray | Message = b"",
        *,
        correlation: frames_pb2.CorrelationMetadata | None = None,
        reply_to: str = "",
        confirm: bool = False,
    ) -> int | None:
        """Publish an event. With ``confirm=True``, return how many subscribers it reached.

        Raises :class:`InvalidTopic` or :class:`PermissionDenied` locally, before sending,
        when the topic is invalid or outside the rights the broker granted. While the
        client is reconnecting, an unconfirmed publish is buffered (see :class:`Reconnect`)
        and a confirmed one waits for the connection.
        """
        if correlation is None and not reply_to and not confirm:
            # The common case in one call to the core: checked, numbered, encoded, queued
            # with whatever else this loop turn sends (see eventbus._sending).
            queued = self._link.sender.publish(topic, payload)
            if queued == 0:
                return None
            if queued > 0:
                await self._drain_link()
                return None
        return await self._publish(topic, payload, correlation, reply_to, confirm)

    async def _publish(
        self,
        topic: str,
        payload: bytes | bytearray | Message,
        correlation: frames_pb2.CorrelationMetadata | None,
        reply_to: str,
        confirm: bool,
    ) -> int | None:
        """What :meth:`publish` leaves to Python: confirms, correlation or reply-to, topics
        outside the rights table, other payload types, and a client not connected."""
        self._check_open()
        link = self._link
        sequence = started = 0
        if topic[:1] == "$" or not link.grant.table.may_publish(topic):
            self._check_publish(topic)
            # A reply is the one event of a topic of its own: nothing to number.
            if not topic.startswith(INBOX_PREFIX):
                sequence, started = self._sequences.next(topic)
        else:
            sequence, started = self._sequences.next(topic)
        if type(payload) is not bytes:
            payload = (
                payload.SerializeToString() if isinstance(payload, Message) else bytes(payload)
            )
        request_id = next(self._ids) if confirm else 0
        # Refused here rather than by the broker, which would close the connection.
        data = encode_publish(
            topic,
            payload,
            request_id,
            correlation.SerializeToString() if correlation is not None else b"",
            reply_to,
            sequence=sequence,
            stream_started_ns=started,
            max_frame=link.max_frame,
        )
        if confirm:
            ack: frames_pb2.PubAck = await self._request(request_id, data)
            return ack.delivered
        if not self._connected.is_set():
            self._backlog.keep(data, topic)
            return None
        # Written with whatever else this loop turn sends; no coroutine is awaited unless
        # the drain could wait or raise.
        if link.send(data):
            await self._drain_link()
        return None

    async def _drain_link(self) -> None:
        try:
            await self._link.drain()
        except ConnectionLost as exc:
            # Handed over before the connection broke: in transit, and a gap subscribers
            # will see. Only a client that will not reconnect has to hear of it here.
            if not self._may_reconnect(exc):
                raise

    def _check_publish(self, topic: str) -> None:
        """Raise unless ``topic`` may be published: valid, and granted (a reply inbox is
        always open to its requester's answer)."""
        if self.grant.may_publish(topic) or topic.startswith(INBOX_PREFIX):
            return
        limits = self.limits
        validate_topic(topic, max_bytes=limits.max_topic_bytes, max_levels=limits.max_topic_levels)
        self.grant.check_publish(topic)

    async def publish_many(self, events: Iterable[tuple[str, bytes | bytearray | Message]]) -> int:
        """Publish ``(topic, payload)`` pairs, in order, unconfirmed; returns how many.

        Each is checked like :meth:`publish`; the first refused one raises, and the ones
        before it are sent.
        """
        count = 0
        for topic, payload in events:
            await self.publish(topic, payload)
            count += 1
        return count

    async def flush(self) -> None:
        """Wait until everything published so far has been handed to the socket."""
        self._check_open()
        if self._connected.is_set():
            await self._link.flush()

    async def subscribe(
        self, topic_filter: str, *, group: str | None = None, max_pending: int | None = None
    ) -> Subscription:
        """Subscribe to a filter (``+``/``#`` wildcards); ``group`` makes it shared.

        Raises :class:`InvalidTopic` or :class:`PermissionDenied` (locally when the granted
        rights already tell, else from the broker).
        """
        self._check_open()
        limits = self.limits
        validate_filter(
            topic_filter, max_bytes=limits.max_topic_bytes, max_levels=limits.max_topic_levels
        )
        self.grant.check_subscribe(topic_filter)
        sub_id = next(self._ids)
        sub = Subscription(self, sub_id, topic_filter, group or "", max_pending or self.max_pending)
        # Routed locally before the SubAck, so no event that follows the ack is missed.
        self._routes.add(sub)
        try:
            await self._request(sub_id, subscribe_frame(sub_id, topic_filter, group or ""))
        except BaseException:
            self._drop_route(sub)
            raise
        return sub

    async def request(
        self,
        topic: str,
        payload: bytes | bytearray | Message = b"",
        *,
        timeout: float = 5.0,
        correlation: frames_pb2.CorrelationMetadata | None = None,
    ) -> Envelope:
        """Publish a request and wait for the first reply.

        Raises :class:`NoResponders` at once when nobody subscribes to ``topic``, and
        :class:`Timeout` when no reply comes within ``timeout`` seconds. Responders answer
        with :meth:`reply`.
        """
        await self._ensure_inbox()
        reply_to = f"{self._link.inbox}{next(self._ids)}"
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._inbound.replies[reply_to] = future
        try:
            await self.publish(
                topic, payload, reply_to=reply_to, correlation=correlation, confirm=True
            )
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no reply to the request on {topic!r} within {timeout:g} s") from None
        finally:
            self._inbound.replies.pop(reply_to, None)

    async def reply(self, request: Envelope, payload: bytes | bytearray | Message = b"") -> None:
        """Answer a request received on a subscription (once per request)."""
        if not request.reply_to:
            raise ValueError(f"the event on {request.topic!r} is not a request (no reply_to)")
        await self.publish(request.reply_to, payload, correlation=request.correlation)

    async def list_subscriptions(self, *, all_clients: bool = False) -> list[frames_pb2.ClientInfo]:
        """This connection's subscriptions, or every client's (needs the admin right)."""
        self._check_open()
        if all_clients:
            self.grant.check_admin("list all clients")
        request_id = next(self._ids)
        frame = _Frame(
            list_request=frames_pb2.ListRequest(request_id=request_id, all_clients=all_clients)
        )
        reply: frames_pb2.ListReply = await self._request(request_id, encode_frame(frame))
        return list(reply.clients)

    async def kick(self, connection_id: int, *, reason: str = "") -> frames_pb2.ClientInfo:
        """Disconnect the client on ``connection_id`` (needs the admin right).

        The kicked client gets :class:`~eventbus.errors.Kicked` naming this principal and
        ``reason``; returns it as it was. Raises :class:`PermissionDenied` without the
        admin right and :class:`~eventbus.errors.EventBusError` (``NOT_FOUND``) when no
        such connection exists.
        """
        self._check_open()
        self.grant.check_admin("disconnect a client")
        request_id = next(self._ids)
        frame = _Frame(
            kick=frames_pb2.Kick(request_id=request_id, connection_id=connection_id, reason=reason)
        )
        reply: frames_pb2.KickReply = await self._request(request_id, encode_frame(frame))
        return reply.client

    async def ping(self, timeout: float = 5.0) -> None:
        """Round trip to the broker; raises :class:`Timeout` when it does not answer."""
        self._check_open()
        nonce = next(self._ids)
        frame = _Frame(ping=frames_pb2.Ping(nonce=nonce))
        try:
            await asyncio.wait_for(self._request(nonce, encode_frame(frame)), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no Pong within {timeout:g} s") from None

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the connection is up (returns at once when it is)."""
        self._check_open()
        try:
            await asyncio.wait_for(self._wait_connected(), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"not reconnected within {timeout:g} s") from None

    async def close(self) -> None:
        """Say goodbye and close; subscriptions end, pending requests fail."""
        if self._closed is None and not self._closing:
            self._closing = True
            self._link.sender.publishing = False
            if self._reconnecting is not None:
                self._reconnecting.cancel()
            if self._connected.is_set():
                goodbye = _Frame(goodbye=frames_pb2.Goodbye(reason="client closed"))
                self._link.send(encode_frame(goodbye))
            self._link.write_out()
            self._link.conn.close()
        # A broker that does not read cannot make close() wait for ever: after the timeout
        # what is still queued is abandoned.
        done, _ = await asyncio.wait({self._reader}, timeout=self._timeout)
        if not done:
            self._link.conn.abort()
            await asyncio.wait({self._reader})
        self._shutdown(None)
        with contextlib.suppress(Exception):
            await self._link.conn.wait_closed()

    async def wait_closed(self) -> BaseException | None:
        """Wait until the client is closed for good; returns why (None after :meth:`close`)."""
        while self._closed is None:
            # The reader ends by closing the client or by starting a reconnection, which ends
            # by closing it or by attaching a new reader: follow whichever is current.
            await asyncio.wait({self._reconnecting or self._reader})
        return None if isinstance(self._closed, Ended) else self._closed

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests --------------------------------------------------------------------------

    async def _unsubscribe(self, sub: Subscription) -> None:
        self._drop_route(sub)
        sub._finish(None)
        if self._closed is not None or self._closing or not self._connected.is_set():
            return  # nothing to undo at the broker: a reconnection will not restore it
        request_id = next(self._ids)
        frame = _Frame(
            unsubscribe=frames_pb2.Unsubscribe(request_id=request_id, subscription_id=sub.id)
        )
        await self._request(request_id, encode_frame(frame))

    async def _ensure_inbox(self) -> None:
        if not self._inbox_id:
            self._inbox_id = next(self._ids)
            try:
                await self._request(self._inbox_id, self._inbox_frame())
            except BaseException:
                self._inbox_id = 0
                raise

    # -- reading ---------------------------------------------------------------------------


async def connect(
    address: str | None = None,
    *,
    principal: str,
    client_name: str | None = None,
    timeout: float = 5.0,
    max_pending: int = _DEFAULT_MAX_PENDING,
    on_dropped: Callable[[int], None] | None = None,
    on_lost: LostCallback | None = None,
    reconnect: Reconnect | bool = True,
) -> Client:
    """Connect to the broker at ``address`` (default: the default address) as ``principal``.

    The broker admits the principal only if its policy binds it to this process's OS
    credentials; otherwise this raises :class:`PermissionDenied` with the reason. The first
    connection must succeed (:class:`ConnectionLost` otherwise); after that the client
    reconnects by itself unless ``reconnect=False``.

    ``on_dropped(count)`` hears of events the broker dropped for this client (its buffer
    was full); ``on_lost(publisher, count)`` of events missing from a publisher's sequence
    that no such report explains (lost in transit). ``client.dropped`` and ``client.lost``
    count both.
    """
    target = address or default_address()
    policy = reconnect if isinstance(reconnect, Reconnect) else Reconnect(enabled=reconnect)
    return await Client.open(
        lambda: transport_connect(target),
        principal=principal,
        client_name=client_name,
        timeout=timeout,
        max_pending=max_pending,
        on_dropped=on_dropped,
        on_lost=on_lost,
        reconnect=policy,
    )
