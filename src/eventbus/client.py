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
from collections import deque
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from . import topics
from ._backend import FrameSplitter, TopicTrie, validate_filter, validate_topic
from .acl import Grant
from .errors import ConnectionLost, EventBusError, ProtocolError, Timeout
from .protocol import PROTOCOL_VERSION, decode_frame, encode_frame, exception_for
from .transport import Connection, default_address
from .transport import connect as transport_connect
from .v1 import frames_pb2

__all__ = ["Client", "Envelope", "Subscription", "connect"]

log = logging.getLogger("eventbus.client")

_Frame = frames_pb2.Frame
_E = frames_pb2.ErrorCode
_FATAL_CODES = frozenset(
    {
        _E.ERROR_CODE_PROTOCOL,
        _E.ERROR_CODE_FRAME_TOO_LARGE,
        _E.ERROR_CODE_HELLO_TIMEOUT,
        _E.ERROR_CODE_UNSUPPORTED_VERSION,
        _E.ERROR_CODE_UNAUTHENTICATED,
        _E.ERROR_CODE_SLOW_CONSUMER,
        _E.ERROR_CODE_SHUTTING_DOWN,
        _E.ERROR_CODE_TIMEOUT,
    }
)
_DEFAULT_MAX_PENDING = 10_000


class Envelope:
    """One delivered event, as the broker stamped it."""

    __slots__ = ("_raw",)

    def __init__(self, raw: frames_pb2.EventEnvelope) -> None:
        self._raw = raw

    @property
    def topic(self) -> str:
        return self._raw.topic

    @property
    def payload(self) -> bytes:
        return self._raw.payload

    @property
    def timestamp_ns(self) -> int:
        """When the broker accepted the event (wall clock, ns since the epoch)."""
        return self._raw.timestamp_ns

    @property
    def publisher(self) -> frames_pb2.ProcessIdentity:
        """Who published it, as the broker verified it: pid, uid, principal, connection id."""
        return self._raw.publisher

    @property
    def correlation(self) -> frames_pb2.CorrelationMetadata | None:
        return self._raw.correlation if self._raw.HasField("correlation") else None

    @property
    def reply_to(self) -> str:
        return self._raw.reply_to

    @property
    def raw(self) -> frames_pb2.EventEnvelope:
        return self._raw

    def decode(self) -> Message:
        """The payload as the protobuf message registered for this topic."""
        return topics.decode_payload(self._raw.topic, self._raw.payload)

    def __repr__(self) -> str:
        who = self._raw.publisher
        return (
            f"Envelope(topic={self.topic!r}, {len(self.payload)} bytes, "
            f"from {who.principal or '?'} pid={who.pid})"
        )


class Subscription:
    """Events of one topic filter: an async iterator, and a context manager that unsubscribes.

    Iteration ends when the subscription or the client is closed; it raises
    :class:`ConnectionLost` if the connection to the broker was lost instead.
    """

    def __init__(
        self, client: Client, sub_id: int, topic_filter: str, group: str, max_pending: int
    ) -> None:
        self.id = sub_id
        self.filter = topic_filter
        self.group = group
        self.max_pending = max_pending
        self._client = client
        self._queue: deque[Envelope] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._end: BaseException | None = None
        self._ended = False

    @property
    def pending(self) -> int:
        """Events received and not yet taken."""
        return len(self._queue)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Envelope:
        try:
            return await self.get()
        except _Ended:
            raise StopAsyncIteration from None

    async def get(self, timeout: float | None = None) -> Envelope:
        """The next event; raises :class:`Timeout` after ``timeout`` seconds without one."""
        queue = self._queue
        while not queue:
            if self._ended:
                if self._end is not None:
                    raise self._end
                raise _Ended
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                raise Timeout(f"no event on {self.filter!r} within {timeout:g} s") from None
            finally:
                self._waiter = None
        envelope = queue.popleft()
        space = self._space
        if space is not None and not space.done():
            space.set_result(None)
        return envelope

    async def unsubscribe(self) -> None:
        """Stop the subscription at the broker; events already received stay readable."""
        if not self._ended:
            await self._client._unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(ConnectionLost):
            await self.unsubscribe()

    def __repr__(self) -> str:
        return f"Subscription(id={self.id}, filter={self.filter!r}, pending={self.pending})"

    # -- used by the client's reader ------------------------------------------------------

    def _push(self, envelope: Envelope) -> None:
        self._queue.append(envelope)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _full(self) -> bool:
        return len(self._queue) >= self.max_pending and not self._ended

    async def _wait_space(self) -> None:
        self._space = asyncio.get_running_loop().create_future()
        try:
            await self._space
        finally:
            self._space = None

    def _finish(self, error: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        self._end = error
        for future in (self._waiter, self._space):
            if future is not None and not future.done():
                future.set_result(None)


class _Ended(Exception):
    pass


class Client:
    """A connection to the broker under one principal. Use :func:`connect` to make one."""

    def __init__(
        self,
        conn: Connection,
        welcome: frames_pb2.Welcome,
        splitter: FrameSplitter,
        pending: list[bytes],
        *,
        max_pending: int = _DEFAULT_MAX_PENDING,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._conn = conn
        self._splitter = splitter
        self.welcome = welcome
        self.connection_id: int = welcome.connection_id
        self.identity: frames_pb2.ProcessIdentity = welcome.identity
        self.limits: frames_pb2.Limits = welcome.limits
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
        self.max_pending = max_pending
        #: Events the broker reported lost on the way to this client.
        self.dropped = 0
        self.on_dropped = on_dropped
        self._subs: dict[int, Subscription] = {}
        self._routes = TopicTrie()
        self._requests: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._closed: BaseException | None = None
        self._closing = False
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read_loop(pending))
        interval = welcome.limits.heartbeat_interval_ms / 1000
        self._keepalive = loop.create_task(self._ping_loop(interval)) if interval > 0 else None

    @property
    def principal(self) -> str:
        return self.grant.principal

    @property
    def closed(self) -> bool:
        return self._closed is not None or self._closing

    @classmethod
    async def handshake(
        cls,
        conn: Connection,
        *,
        principal: str,
        client_name: str | None = None,
        timeout: float = 5.0,
        max_pending: int = _DEFAULT_MAX_PENDING,
        on_dropped: Callable[[int], None] | None = None,
    ) -> Client:
        """Send Hello on an open connection and wait for Welcome."""
        hello = frames_pb2.Hello(
            protocol_version=PROTOCOL_VERSION,
            principal=principal,
            client_name=client_name or f"{principal}[{os.getpid()}]",
        )
        conn.write(encode_frame(_Frame(hello=hello)))
        splitter = FrameSplitter()
        try:
            bodies = await asyncio.wait_for(_first_frames(conn, splitter), timeout)
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
        splitter = FrameSplitter(max(frame.welcome.limits.max_frame_bytes, 1 << 20))
        return cls(
            conn,
            frame.welcome,
            splitter,
            bodies[1:],
            max_pending=max_pending,
            on_dropped=on_dropped,
        )

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
        when the topic is invalid or outside the rights the broker granted.
        """
        self._check_open()
        grant = self.grant
        if not grant.may_publish(topic):
            limits = self.limits
            validate_topic(
                topic, max_bytes=limits.max_topic_bytes, max_levels=limits.max_topic_levels
            )
            grant.check_publish(topic)
        if isinstance(payload, Message):
            payload = payload.SerializeToString()
        request_id = next(self._ids) if confirm else 0
        publish = frames_pb2.Publish(
            request_id=request_id, topic=topic, payload=bytes(payload), reply_to=reply_to
        )
        if correlation is not None:
            publish.correlation.CopyFrom(correlation)
        data = encode_frame(_Frame(publish=publish))
        if confirm:
            ack: frames_pb2.PubAck = await self._request(request_id, data)
            return ack.delivered
        self._conn.write(data)
        await self._conn.drain()
        return None

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
        self._subs[sub_id] = sub
        self._routes.add(topic_filter, sub)
        frame = _Frame(
            subscribe=frames_pb2.Subscribe(
                request_id=sub_id, filter=topic_filter, group=group or ""
            )
        )
        try:
            await self._request(sub_id, encode_frame(frame))
        except BaseException:
            self._drop_route(sub)
            raise
        return sub

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

    async def ping(self, timeout: float = 5.0) -> None:
        """Round trip to the broker; raises :class:`Timeout` when it does not answer."""
        self._check_open()
        nonce = next(self._ids)
        frame = _Frame(ping=frames_pb2.Ping(nonce=nonce))
        try:
            await asyncio.wait_for(self._request(nonce, encode_frame(frame)), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no Pong within {timeout:g} s") from None

    async def close(self) -> None:
        """Say goodbye and close; subscriptions end, pending requests fail."""
        if self._closed is None and not self._closing:
            self._closing = True
            goodbye = _Frame(goodbye=frames_pb2.Goodbye(reason="client closed"))
            self._conn.write(encode_frame(goodbye))
            self._conn.close()
        with contextlib.suppress(asyncio.CancelledError, EventBusError):
            await self._reader
        self._shutdown(None)
        with contextlib.suppress(Exception):
            await self._conn.wait_closed()

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection ends; returns why (None after :meth:`close`)."""
        with contextlib.suppress(asyncio.CancelledError, EventBusError):
            await asyncio.shield(self._reader)
        return self._closed if not isinstance(self._closed, _Ended) else None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed is not None and not isinstance(self._closed, _Ended):
            raise ConnectionLost(f"connection to the broker is closed: {self._closed}")
        if self._closed is not None or self._closing:
            raise ConnectionLost("client is closed")

    async def _request(self, request_id: int, data: bytes) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        try:
            self._conn.write(data)
            return await future
        finally:
            self._requests.pop(request_id, None)

    async def _unsubscribe(self, sub: Subscription) -> None:
        self._drop_route(sub)
        sub._finish(None)
        if self._closed is not None or self._closing:
            return
        request_id = next(self._ids)
        frame = _Frame(
            unsubscribe=frames_pb2.Unsubscribe(request_id=request_id, subscription_id=sub.id)
        )
        await self._request(request_id, encode_frame(frame))

    def _drop_route(self, sub: Subscription) -> None:
        if self._subs.pop(sub.id, None) is not None:
            self._routes.discard(sub.filter, sub)

    async def _ping_loop(self, interval: float) -> None:
        ping = encode_frame(_Frame(ping=frames_pb2.Ping(nonce=0)))
        while True:
            await asyncio.sleep(interval)
            self._conn.write(ping)

    async def _read_loop(self, pending: list[bytes]) -> None:
        error: BaseException | None = None
        try:
            for body in pending:
                await self._handle(body)
            conn = self._conn
            feed = self._splitter.feed
            while True:
                data = await conn.read()
                if not data:
                    if not self._closing:
                        error = ConnectionLost("the broker closed the connection")
                    break
                for body in feed(data):
                    await self._handle(body)
        except _Ended:
            pass
        except asyncio.CancelledError:
            raise
        except EventBusError as exc:
            error = exc if not self._closing else None
        except Exception as exc:
            log.exception("client reader failed")
            error = ConnectionLost(f"client reader failed: {exc!r}")
        finally:
            self._shutdown(error)

    async def _handle(self, body: bytes) -> None:
        frame = decode_frame(body)
        kind = frame.WhichOneof("body")
        if kind == "event":
            envelope = Envelope(frame.event)
            for sub in self._routes.match(envelope.topic):
                assert isinstance(sub, Subscription)
                while sub._full():
                    await sub._wait_space()
                sub._push(envelope)
        elif kind in ("sub_ack", "unsub_ack", "pub_ack", "list_reply"):
            message = getattr(frame, kind)
            future = self._requests.get(message.request_id)
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "pong":
            future = self._requests.get(frame.pong.nonce)
            if future is not None and not future.done():
                future.set_result(frame.pong)
        elif kind == "error":
            self._on_error(frame.error)
        elif kind == "dropped":
            self.dropped += frame.dropped.count
            log.warning(
                "broker dropped %d event(s) bound for this client (%d in all)",
                frame.dropped.count,
                frame.dropped.total,
            )
            if self.on_dropped is not None:
                self.on_dropped(frame.dropped.count)
        elif kind == "goodbye":
            if not self._closing:
                raise ConnectionLost(f"broker said goodbye: {frame.goodbye.reason}")
            raise _Ended
        else:
            raise ProtocolError(f"unexpected {kind} frame from the broker")

    def _on_error(self, error: frames_pb2.Error) -> None:
        exc = exception_for(error)
        future = self._requests.get(error.request_id) if error.request_id else None
        if future is not None and not future.done():
            future.set_exception(exc)
        elif error.code in _FATAL_CODES:
            raise exc
        else:
            log.warning("broker: %s", exc)

    def _shutdown(self, error: BaseException | None) -> None:
        if self._closed is not None:
            return
        self._closed = error if error is not None else _Ended()
        if self._keepalive is not None:
            self._keepalive.cancel()
        lost = error or ConnectionLost("client is closed")
        for future in self._requests.values():
            if not future.done():
                future.set_exception(lost)
        for sub in list(self._subs.values()):
            sub._finish(error)
        self._subs.clear()
        self._conn.abort() if error is not None else self._conn.close()


async def _first_frames(conn: Connection, splitter: FrameSplitter) -> list[bytes]:
    while True:
        data = await conn.read()
        if not data:
            raise ConnectionLost("the broker closed the connection during the handshake")
        bodies = splitter.feed(data)
        if bodies:
            return bodies


async def connect(
    address: str | None = None,
    *,
    principal: str,
    client_name: str | None = None,
    timeout: float = 5.0,
    max_pending: int = _DEFAULT_MAX_PENDING,
    on_dropped: Callable[[int], None] | None = None,
) -> Client:
    """Connect to the broker at ``address`` (default: the default address) as ``principal``.

    The broker admits the principal only if its policy binds it to this process's OS
    credentials; otherwise this raises :class:`PermissionDenied` with the reason.
    """
    conn = await transport_connect(address or default_address())
    return await Client.handshake(
        conn,
        principal=principal,
        client_name=client_name,
        timeout=timeout,
        max_pending=max_pending,
        on_dropped=on_dropped,
    )
