"""The broker: accepts connections, admits principals, routes events, reports losses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from .. import topics
from .._backend import serve_frames, write_out
from ..acl import Policy, default_policy
from ..errors import (
    ConnectionLost,
    FrameTooLarge,
    ProtocolError,
)
from ..framestream import FrameStream
from ..protocol import (
    encode_frame,
    error_frame,
    read_frame,
)
from ..transport import (
    Connection,
    Server,
    default_address,
    memory_pair,
    serve,
    serve_inherited,
)
from ..v1 import frames_pb2
from ._accounting import Accounting, PrincipalUsage
from ._admission import Refused, admit, read_hello, welcome_frame
from ._budget import MemoryBudget
from ._publishing import Publishing
from ._quotas import Quotas
from ._requests import Requests
from ._routing import Router
from ._session import Session
from ._system import SystemPublisher, presence
from .config import BrokerConfig

if TYPE_CHECKING:
    from ..client import Client
    from ._metrics import BrokerSnapshot, MetricsServer

__all__ = ["Broker"]

log = logging.getLogger("eventbus.broker")

_Frame = frames_pb2.Frame
_ProcessIdentity = frames_pb2.ProcessIdentity
_E = frames_pb2.ErrorCode


# Published events between two checks of the memory budget on the publish path.
_BUDGET_CHECK_EVERY = 64


class _Close(Exception):
    """Ends a connection's read loop with a reason (after an Error frame was sent)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Broker:
    """Routes events between connected clients under an access-control policy.

    Run it standalone (``python -m eventbus.broker``) or inside another asyncio program::

        async with Broker(BrokerConfig(address=path)) as broker:
            agent = await broker.connect_local("agent")   # in-process, no socket
            events = await agent.subscribe("events.#")
    """

    # The loop the connections are served on (set as the first one is).
    _loop: asyncio.AbstractEventLoop

    def __init__(self, config: BrokerConfig | None = None, **settings: Any) -> None:
        if config is None:
            config = BrokerConfig(**settings)
        elif settings:
            raise TypeError("pass either a BrokerConfig or keyword settings, not both")
        self.config = config
        self.policy: Policy = config.policy or default_policy()
        self.address = config.address or default_address()
        self._router = Router(config.max_topic_bytes, config.max_topic_levels)
        self._sessions: dict[int, Session] = {}
        self._next_connection_id = 1
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._budget = MemoryBudget(
            config.memory_budget_bytes,
            config.max_outbound_bytes_per_uid,
            config.budget_pause,
            self._shed,
        )
        self._quotas = Quotas(
            config.max_connections_per_uid,
            config.max_subscriptions_per_uid,
            config.max_subscriptions_per_connection,
        )
        self._next_budget_check = _BUDGET_CHECK_EVERY
        # Sessions with frames queued since the last flush (see Session.flush).
        self._dirty: list[Session] = []
        # How long a publisher may be held while a subscriber drains (see _pace).
        self._pause_for = config.publisher_pause
        self._publishing = Publishing(config, self._router, SystemPublisher(config.name))
        self._closed_bytes_in = 0
        self._closed_bytes_out = 0
        self._accounting = Accounting()
        self._metrics: MetricsServer | None = None
        self._limits = frames_pb2.Limits(
            max_frame_bytes=config.max_frame_bytes,
            max_topic_bytes=config.max_topic_bytes,
            max_topic_levels=config.max_topic_levels,
            max_outbound_bytes=config.max_outbound_bytes,
            heartbeat_interval_ms=int(config.heartbeat_interval * 1000),
        )
        requests = Requests(config, self._router, self._quotas, self._sessions, self._disconnect)
        self._handlers: dict[str, Callable[[Session, Any], None]] = {
            "publish": self._publishing.publish,
            "subscribe": requests.subscribe,
            "unsubscribe": requests.unsubscribe,
            "ping": requests.ping,
            "list_request": requests.list_clients,
            "kick": requests.kick,
        }

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the configured address (raises ``AddressInUse`` if another broker does)."""
        if self.config.listen_fd is not None:
            self._server = await serve_inherited(self.config.listen_fd, self._handle)
            self.address = self._server.address
        else:
            self._server = await serve(self.address, self._handle, group=self.config.socket_group)
        if self.config.metrics is not None:
            from ._metrics import MetricsServer

            metrics = MetricsServer(
                self.config.metrics,
                self._snapshot,
                allow_remote=self.config.metrics_allow_remote,
            )
            try:
                metrics.start()
            except BaseException:
                self._server.close()
                await self._server.wait_closed()
                raise
            self._metrics = metrics
            log.info("metrics on %s", metrics.url)
        self._spawn(self._housekeeping())
        log.info(
            "broker %s listening on %s (policy: %s)",
            self.config.name,
            self.address,
            self.policy.name,
        )

    async def serve_forever(self) -> None:
        """Wait until :meth:`stop` is called."""
        await self._stopped.wait()

    async def stop(self) -> None:
        """Stop accepting, say goodbye to every client, let buffers drain, close."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.stop)
        if self._server is not None:
            self._server.close()
        goodbye = encode_frame(_Frame(goodbye=frames_pb2.Goodbye(reason="broker shutting down")))
        sessions = list(self._sessions.values())
        for session in sessions:
            session.send(goodbye)
            session.flush()
            session.conn.close()
        if sessions:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(
                        *(s.conn.wait_closed() for s in sessions), return_exceptions=True
                    ),
                    self.config.drain_timeout,
                )
        for session in sessions:
            session.conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._stopped.set()
        log.info("broker %s stopped", self.config.name)

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def connect_local(
        self, principal: str = "agent", *, client_name: str = "in-process"
    ) -> Client:
        """A client in this process, connected through memory instead of a socket.

        It is admitted like any other connection, with this process's credentials.
        """
        from ..client import Client, Reconnect

        async def opener() -> Connection:
            if self._stopping:
                raise ConnectionLost("the broker has stopped")
            server_end, client_end = memory_pair()
            self._spawn(self._handle(server_end))
            return client_end

        return await Client.open(
            opener, principal=principal, client_name=client_name, reconnect=Reconnect(False)
        )

    # -- introspection ---------------------------------------------------------------------

    @property
    def publishers_paused(self) -> bool:
        """Whether reading from clients is paused (for at most ``budget_pause`` seconds)
        because queued bytes are over the memory budget."""
        return self._budget.paused

    @property
    def messages_in(self) -> int:
        """Events accepted from publishers."""
        return self._publishing.messages_in

    @property
    def messages_out(self) -> int:
        """Deliveries written to subscriber connections."""
        return self._publishing.messages_out

    @property
    def messages_dropped(self) -> int:
        """Deliveries dropped for full subscriber buffers."""
        return self._publishing.messages_dropped

    @property
    def clients(self) -> int:
        return len(self._sessions)

    @property
    def metrics_url(self) -> str | None:
        """Where the Prometheus endpoint answers, when ``config.metrics`` turned it on."""
        return self._metrics.url if self._metrics is not None else None

    def usage(self) -> dict[str, PrincipalUsage]:
        """Counters per principal since the broker started, closed connections included."""
        return self._accounting.snapshot(self._sessions.values())

    def _snapshot(self) -> BrokerSnapshot:
        from ._metrics import BrokerSnapshot

        sessions = list(self._sessions.values())
        return BrokerSnapshot(
            principals=self._accounting.snapshot(sessions),
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            dropped=self.messages_dropped,
            queued_bytes=sum(s.queued for s in sessions),
            publishers_paused=self.publishers_paused,
        )

    def stats(self) -> frames_pb2.BrokerStats:
        """Counters of the whole broker and of each connection."""
        sessions = list(self._sessions.values())
        return frames_pb2.BrokerStats(
            timestamp_ns=time.time_ns(),
            clients=len(sessions),
            subscriptions=sum(len(s.subscriptions) for s in sessions),
            messages_in=self.messages_in,
            messages_out=self.messages_out,
            dropped=self.messages_dropped,
            bytes_in=self._closed_bytes_in + sum(s.bytes_in for s in sessions),
            bytes_out=self._closed_bytes_out + sum(s.bytes_out for s in sessions),
            queued_bytes=sum(s.queued for s in sessions),
            clients_detail=[s.info() for s in sessions],
        )

    # -- connections -----------------------------------------------------------------------

    async def _handle(self, conn: Connection) -> None:
        connection_id = self._next_connection_id
        self._next_connection_id += 1
        session = Session(
            conn, connection_id, self.config.max_outbound_bytes, self._overflow, self._dirty
        )
        self._loop = asyncio.get_running_loop()
        stream = FrameStream(conn, self.config.max_frame_bytes)
        reason = "eof"
        try:
            pending = await self._admit(session, stream)
            self._sessions[connection_id] = session
            self._publish_presence(topics.SYS_CLIENT_CONNECTED, session, "connected")
            # Frames pipelined behind Hello are served first, and answered at once.
            self._on_frames(session, stream, pending)
            stream.start(partial(self._on_frames, session, stream))
            end = await stream.wait()
            if end is not None:
                raise end
            if stream.buffered:
                reason = f"closed mid-frame ({stream.buffered} bytes of a frame unread)"
        except _Close as close:
            reason = close.reason
        except FrameTooLarge as exc:
            reason = f"frame too large: {exc}"
            self._fatal(session, _E.ERROR_CODE_FRAME_TOO_LARGE, str(exc))
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
            self._fatal(session, _E.ERROR_CODE_PROTOCOL, str(exc))
        except ConnectionLost as exc:
            reason = f"connection lost: {exc}"
        except asyncio.CancelledError:
            reason = "broker shutting down"
            raise
        finally:
            self._flush()
            self._forget(session, reason)

    def _on_frames(self, session: Session, stream: FrameStream, bodies: list[bytes]) -> None:
        """Serve the frames of one received chunk (called from the transport's
        ``data_received``): the broker's whole per-frame path, with no task or future."""
        session.last_seen = self._loop.time()
        session.bytes_in = stream.received
        if session.closed:
            raise _Close("cut off by the broker")  # its frames are no longer served
        grant = session.grant
        assert grant is not None
        try:
            serve_frames(
                session,
                bodies,
                grant.table,
                self._router.trie,
                self._dispatch,
                self._publishing.decide,
                self._publishing,
            )
        finally:
            # One write per connection; those this pass fed over half their limit, when
            # a publisher may be held for them.
            fed = write_out(self._dirty, self._pause_for > 0)
        if fed is not None:
            self._pace(session, stream, fed)
        if self.messages_in >= self._next_budget_check:
            self._next_budget_check = self.messages_in + _BUDGET_CHECK_EVERY
            self._budget.check(self._sessions.values(), self._loop.time())

    def _pace(self, publisher: Session, stream: FrameStream, fed: list[Session]) -> None:
        """Hold ``publisher``'s reading while a subscriber this read pass fed over half its
        outbound limit has its transport paused (written out, it still holds over half), so
        it can drain without a loss; for ``publisher_pause`` at most, after which that
        subscriber takes its drops (DESIGN: slow consumers never stop the others, and a
        pause is bounded). A transport the socket took enough from to stay under its high
        watermark needs no hold: its drain would not wait, and the publisher would be held
        for nothing while the subscriber's buffer kept growing."""
        for sub in fed:
            if sub.paced and sub is not publisher and not sub.closed and sub.conn.drain_needed():
                stream.pause()
                self._spawn(self._hold(publisher, stream, sub))
                return

    async def _hold(self, publisher: Session, stream: FrameStream, sub: Session) -> None:
        held_at = self._loop.time()
        try:
            await asyncio.wait_for(sub.conn.drain(), self._pause_for)
        except asyncio.TimeoutError:
            sub.stalled()
        except ConnectionLost:
            pass
        finally:
            # The held peer's silence was the broker's doing: do not count it.
            publisher.last_seen += self._loop.time() - held_at
            stream.resume()
            if publisher.paused:  # the memory budget paused it meanwhile: it stays paused
                publisher.conn.pause_reading()

    async def _admit(self, session: Session, stream: FrameStream) -> list[bytes]:
        """Wait for Hello, check it against the policy, answer Welcome or Error."""
        config = self.config
        try:
            hello, pending = await read_hello(stream, config.hello_timeout)
            grant = admit(
                session,
                hello,
                self.policy,
                self._quotas,
                max_topic_bytes=config.max_topic_bytes,
                max_topic_levels=config.max_topic_levels,
            )
        except Refused as refused:
            if refused.code:
                self._fatal(session, refused.code, refused.message)
            raise _Close(refused.message) from None
        session.send(welcome_frame(session, grant, self._limits, config.name))
        session.flush()
        return pending

    def _forget(self, session: Session, reason: str) -> None:
        """Drop a connection's subscriptions and say so in ``$SYS``; once per connection."""
        session.flush()
        session.conn.close()
        if self._sessions.pop(session.connection_id, None) is None:
            return  # never admitted, or already forgotten (the broker cut it off)
        self._closed_bytes_in += session.bytes_in
        self._closed_bytes_out += session.bytes_out
        self._accounting.retire(session)
        subscriptions = [
            frames_pb2.SubscriptionInfo(subscription_id=i, filter=f, group=g)
            for i, (f, g) in session.subscriptions.items()
        ]
        self._quotas.release(session)
        self._router.remove_session(session)
        session.close()
        log.info(
            "connection %d (%s, pid=%s) closed: %s",
            session.connection_id,
            session.principal,
            session.peer.pid,
            reason,
        )
        self._publish_presence(topics.SYS_CLIENT_DISCONNECTED, session, reason, subscriptions)

    # -- frames ----------------------------------------------------------------------------

    def _dispatch(self, session: Session, body: bytes) -> None:
        if not body:
            raise ProtocolError("a frame of length 0 carries no Frame")
        kind, message = read_frame(body)
        session.messages_in += 1
        handler = self._handlers.get(kind) if kind is not None else None
        if handler is not None:
            handler(session, message)
        elif kind is None:
            # Parsed, but no frame kind this broker knows (e.g. from a newer client).
            session.send_error(
                0, _E.ERROR_CODE_PROTOCOL, "frame has no body this broker knows; ignored"
            )
        elif kind == "goodbye":
            raise _Close("goodbye" + (f": {message.reason}" if message.reason else ""))
        elif kind == "pong":
            pass
        else:
            message = f"a client may not send {kind} frames"
            self._fatal(session, _E.ERROR_CODE_PROTOCOL, message)
            raise _Close(message)

    def _fatal(self, session: Session, code: int, message: str) -> None:
        """The connection's last words: an Error frame past any limit, then it closes."""
        log.warning("connection %d (pid=%s): %s", session.connection_id, session.peer.pid, message)
        session.send_last(encode_frame(error_frame(code, message)))  # type: ignore[arg-type]
        session.flush()

    # -- flow control, presence, housekeeping -----------------------------------------------

    def _overflow(self, session: Session, answer: bool) -> bool:
        """An event (or an answer) did not fit a connection's buffer; True keeps it."""
        if session.closed:
            return False
        limit = self.config.max_outbound_bytes
        if answer:
            # Answers cannot be dropped: a peer that asks and never reads is given up on.
            message = f"slow consumer: unread answers over the outbound limit of {limit} bytes"
        elif self.config.slow_consumer == "disconnect":
            message = f"slow consumer: outbound buffer over {limit} bytes"
        else:
            return True
        self._disconnect(session, _E.ERROR_CODE_SLOW_CONSUMER, message)
        return False

    def _shed(self, session: Session, reason: str) -> None:
        """The memory budget gives up on what ``session`` holds (see MemoryBudget)."""
        log.warning(
            "connection %d (%s, pid=%s): shedding, %s",
            session.connection_id,
            session.principal,
            session.peer.pid,
            reason,
        )
        if self.config.slow_consumer == "disconnect":
            self._disconnect(session, _E.ERROR_CODE_SLOW_CONSUMER, f"slow consumer: {reason}", 0.0)
        else:
            session.shed()

    def _disconnect(
        self, session: Session, code: int, message: str, abort_after: float | None = None
    ) -> None:
        """Close a connection the broker gives up on, with an Error frame as its last words.

        The frame sits behind whatever is queued; a peer that does not read it within the
        drain timeout (or ``abort_after`` seconds) is cut off, so a hung peer cannot hold
        its connection, or the memory queued for it, for longer.
        """
        self._fatal(session, code, message)
        self._forget(session, message)
        delay = self.config.drain_timeout if abort_after is None else abort_after
        asyncio.get_running_loop().call_later(delay, session.conn.abort)

    def _publish_presence(
        self,
        topic: str,
        session: Session,
        reason: str,
        subscriptions: list[frames_pb2.SubscriptionInfo] | None = None,
    ) -> None:
        if self._stopping and topic == topics.SYS_CLIENT_DISCONNECTED:
            return
        self.publish_system(topic, presence(session, reason, subscriptions))

    def publish_system(self, topic: str, payload: bytes) -> int:
        """Publish a broker event (``$SYS...``) with the broker as publisher."""
        delivered = self._publishing.system(topic, payload)
        self._flush()
        return delivered

    def _flush(self) -> None:
        """Write out every connection's queued frames (one write per connection)."""
        write_out(self._dirty, False)

    async def _housekeeping(self) -> None:
        """Close silent connections, publish stats, guard the memory budget.

        It never stops for a paused read: a peer stopped for good is still cut off, and
        its buffer freed, three heartbeat intervals after it went silent.
        """
        config = self.config
        loop = asyncio.get_running_loop()
        tick = min(config.heartbeat_interval / 2, 0.5)
        next_stats = loop.time() + config.stats_interval
        silent_for = 3 * config.heartbeat_interval
        while True:
            # Paused reading is resumed from here: look sooner.
            await asyncio.sleep(min(tick, 0.02) if self._budget.paused else tick)
            now = loop.time()
            for session in list(self._sessions.values()):
                # A peer whose reading the budget paused is not counted silent meanwhile.
                silent = now - session.last_seen > silent_for
                if silent and not session.paused and not session.closed:
                    message = f"no frame for {silent_for:g} s (3 heartbeat intervals)"
                    self._disconnect(session, _E.ERROR_CODE_TIMEOUT, message)
            self._budget.check(self._sessions.values(), now)
            if config.stats_interval > 0 and now >= next_stats:
                next_stats = now + config.stats_interval
                self.publish_system(topics.SYS_BROKER_STATS, self.stats().SerializeToString())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
