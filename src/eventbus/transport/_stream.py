"""The connection interface, and its implementation on an asyncio byte-stream transport.

`StreamConnection` is the one ``asyncio.Protocol`` used by both the Unix-socket and the
Windows named-pipe transports: the protocol object *is* the connection, so a received chunk
goes from ``data_received`` to a waiting ``read()`` without a task or a queue in between.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import cast

from ..errors import ConnectionLost

__all__ = [
    "DEFAULT_READ_LIMIT",
    "UNKNOWN_PEER",
    "Connection",
    "PeerCredentials",
    "PeerLookup",
    "PeerProcess",
    "Server",
    "StreamConnection",
]

logger = logging.getLogger("eventbus.transport")

#: Unread received bytes above which a connection stops reading from the OS.
DEFAULT_READ_LIMIT = 4 * 1024 * 1024
#: asyncio's own default write watermarks, used by every implementation.
DEFAULT_HIGH_WATER = 64 * 1024
DEFAULT_LOW_WATER = DEFAULT_HIGH_WATER // 4


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is on the other end of a connection, as the operating system reports it.

    Every field is read from the OS at connection time, never taken from the peer's word.
    A field the platform cannot tell is ``None`` (or empty).

    Attributes:
        pid: the peer's process id.
        uid: the peer's effective user id (POSIX only).
        gid: the peer's effective group id (POSIX only).
        exe: the resolved path of the peer's executable, where the OS tells it
            (``/proc/<pid>/exe`` on Linux, the process image name on Windows).
        groups: the peer's supplementary group ids, where cheaply known.
        sid: the account SID of the peer process's token, as a string (Windows only).
        cgroup: the peer's cgroup v2 path, as ``/proc/<pid>/cgroup`` shows it to this
            process (Linux only).
        unit: the systemd unit (``*.service`` or ``*.scope``) the peer's cgroup belongs
            to, when its cgroup path names one (Linux only).
    """

    pid: int | None
    uid: int | None
    gid: int | None
    exe: str | None = None
    groups: frozenset[int] = frozenset()
    sid: str | None = None
    cgroup: str | None = None
    unit: str | None = None


#: The credentials of a peer the OS would not describe.
UNKNOWN_PEER = PeerCredentials(pid=None, uid=None, gid=None)


class PeerProcess(abc.ABC):
    """A hold on the peer's process that a recycled pid cannot pass for (a Linux pidfd).

    A connection keeps it for its whole life, and releases it when it is lost.
    """

    __slots__ = ()

    @abc.abstractmethod
    def alive(self) -> bool:
        """Whether the process that connected is still running (False once released)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the hold back to the OS. Idempotent."""


#: Reads the peer's credentials from a connected transport, and the hold on its process
#: where the platform gives one.
PeerLookup = Callable[[asyncio.BaseTransport], tuple[PeerCredentials, PeerProcess | None]]


class Connection(abc.ABC):
    """A connected, bidirectional byte stream with the OS-verified identity of its peer.

    The same interface is implemented over Unix domain sockets, Windows named pipes and an
    in-process memory pair; code above the transport never knows which one it holds.

    Attributes:
        peer: the other side's credentials. On the accepting side these are the client's;
            on the connecting side the server's (or this process's when the OS cannot tell).
    """

    __slots__ = ()

    peer: PeerCredentials

    @abc.abstractmethod
    async def read(self) -> bytes:
        """Return the received bytes not read yet, waiting for some if there are none.

        All buffered chunks are returned at once, joined. Returns ``b""`` at end of stream
        (the peer closed, or this side was closed). Raises `ConnectionLost` when the
        connection was reset or broke, once the bytes received before that are consumed.
        Only one coroutine may wait in ``read()`` at a time.
        """

    @abc.abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for sending; never blocks. Does nothing once the connection closes."""

    @abc.abstractmethod
    def writelines(self, chunks: Iterable[bytes]) -> None:
        """Queue each of ``chunks`` for sending, in order, as `write` would."""

    @abc.abstractmethod
    def write_buffer_size(self) -> int:
        """Return how many written bytes have not been handed to the OS (or read by the peer)."""

    @abc.abstractmethod
    async def drain(self) -> None:
        """Wait while the write buffer is above the high watermark, until it is at the low one.

        Returns at once when the buffer is under the high watermark. Raises `ConnectionLost`
        if the connection is (or becomes) closed.
        """

    @abc.abstractmethod
    def set_write_buffer_limits(self, high: int, low: int | None = None) -> None:
        """Set the write buffer's high and low watermarks (``low`` defaults to ``high // 4``)."""

    @abc.abstractmethod
    def pause_reading(self) -> None:
        """Stop taking bytes from the peer, so that it is pushed back on once buffers fill."""

    @abc.abstractmethod
    def resume_reading(self) -> None:
        """Undo `pause_reading`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close once the buffered bytes are sent. Idempotent."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Close at once, dropping the bytes not sent yet. Idempotent."""

    @abc.abstractmethod
    def is_closing(self) -> bool:
        """Return True once the connection is closed or closing (by either side)."""

    @abc.abstractmethod
    def peer_alive(self) -> bool:
        """Return whether the peer is still the process that connected.

        False when that process has exited, or could not be pinned down at accept time
        (it was gone, or its pid already belonged to a newer process): then ``peer``'s
        pid no longer names it. False as well once a pinned connection is lost. True where
        the platform cannot tell.
        """

    @abc.abstractmethod
    async def wait_closed(self) -> None:
        """Wait until the connection is completely closed."""


class StreamConnection(asyncio.Protocol, Connection):
    """A `Connection` that is also the ``asyncio.Protocol`` of its transport.

    Received chunks are appended to a list and one waiting reader is woken; ``read()`` joins
    them. Once more than ``read_limit`` unread bytes are buffered the transport stops reading
    from the OS, so a peer that writes faster than this side reads is pushed back on.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_closed",
        "_drain_waiters",
        "_eof",
        "_exc",
        "_limit_paused",
        "_loop",
        "_on_made",
        "_peer_of",
        "_process",
        "_read_limit",
        "_transport",
        "_user_paused",
        "_waiter",
        "_write_paused",
        "peer",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        peer_of: PeerLookup,
        *,
        on_made: Callable[[StreamConnection], None] | None = None,
        read_limit: int = DEFAULT_READ_LIMIT,
    ) -> None:
        """Create the protocol for one connection.

        Args:
            loop: the running event loop.
            peer_of: reads the peer's credentials (and takes a hold on its process) from
                the transport when it is connected.
            on_made: called once connected (the server uses it to start its handler).
            read_limit: unread bytes above which reading from the OS pauses.
        """
        if read_limit <= 0:
            raise ValueError(f"read_limit must be positive, got {read_limit!r}")
        self._loop = loop
        self._peer_of = peer_of
        self._on_made = on_made
        self._read_limit = read_limit
        self._transport: asyncio.Transport | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._exc: BaseException | None = None
        self._limit_paused = False
        self._user_paused = False
        self._write_paused = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._process: PeerProcess | None = None
        self.peer = UNKNOWN_PEER

    def __repr__(self) -> str:
        state = "closed" if self._closed.done() else "open"
        return f"<StreamConnection {state} peer={self.peer}>"

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without inheriting from it
        self._transport = cast(asyncio.Transport, transport)
        try:
            self.peer, self._process = self._peer_of(transport)
        except Exception:  # a credential lookup must never kill the connection silently
            logger.exception("could not read the peer credentials of %r", transport)
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > self._read_limit and not self._limit_paused:
            self._limit_paused = True
            if not self._user_paused:
                self._pause_transport()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake_reader()
        return None  # let the transport close itself: this interface has no half-close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._process is not None:
            self._process.release()
        self._eof = True
        if exc is not None and self._exc is None:
            self._exc = exc
        self._wake_reader()
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_exception(self._lost_error())
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # -- Connection ---------------------------------------------------------------------

    async def read(self) -> bytes:
        if not self._chunks:
            if self._eof:
                return self._at_end()
            if self._waiter is not None:
                raise RuntimeError("read() called while another coroutine is already reading")
            self._waiter = waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
            if not self._chunks:
                return self._at_end()
        chunks = self._chunks
        self._chunks = []
        self._buffered = 0
        if self._limit_paused:
            self._limit_paused = False
            if not self._user_paused:
                self._resume_transport()
        # join returns a lone bytes chunk as is, and turns bytearray chunks into bytes
        return b"".join(chunks)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.writelines(chunks)

    def write_buffer_size(self) -> int:
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    async def drain(self) -> None:
        if self._closed.done():
            raise self._lost_error()
        if not self._write_paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._drain_waiters:  # cancelled while waiting
                self._drain_waiters.remove(waiter)

    def set_write_buffer_limits(self, high: int, low: int | None = None) -> None:
        if self._transport is not None:
            self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        if not self._user_paused:
            self._user_paused = True
            if not self._limit_paused:
                self._pause_transport()

    def resume_reading(self) -> None:
        if self._user_paused:
            self._user_paused = False
            if not self._limit_paused:
                self._resume_transport()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def is_closing(self) -> bool:
        transport = self._transport
        return transport is None or transport.is_closing() or self._closed.done()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def peer_alive(self) -> bool:
        return self._process is None or self._process.alive()

    # -- internals ----------------------------------------------------------------------

    def _at_end(self) -> bytes:
        if self._exc is not None:
            raise self._lost_error()
        return b""

    def _lost_error(self) -> ConnectionLost:
        exc = self._exc
        if exc is None:
            return ConnectionLost(f"connection closed (peer {self.peer})")
        err = ConnectionLost(f"connection lost (peer {self.peer}): {exc}")
        err.__cause__ = exc
        return err

    def _wake_reader(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _pause_transport(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    def _resume_transport(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()


Handler = Callable[[Connection], Awaitable[None]]


class Server(abc.ABC):
    """A listening endpoint that runs a handler for each accepted connection.

    Each accepted connection gets its own task running ``handler(connection)``; when the
    handler returns, raises or is cancelled, the connection is closed (an exception is
    logged to the ``eventbus.transport`` logger).

    Attributes:
        address: the address the server listens on, as given to `serve`.
    """

    def __init__(
        self,
        address: str,
        handler: Handler,
        peer_of: PeerLookup,
        read_limit: int,
    ) -> None:
        """Set up the bookkeeping; the platform's `serve` starts listening."""
        if read_limit <= 0:
            raise ValueError(f"read_limit must be positive, got {read_limit!r}")
        self.address = address
        self._handler = handler
        self._peer_of = peer_of
        self._read_limit = read_limit
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[StreamConnection] = set()
        self._closing = False

    def __repr__(self) -> str:
        state = "closed" if self._closing else "serving"
        return f"<{type(self).__name__} {self.address!r} {state}, {len(self._tasks)} handlers>"

    def close(self) -> None:
        """Stop accepting connections. Connections already accepted are left to their handlers.

        Idempotent. The Unix implementation also removes the socket file it created (only
        if the file at the path is still that socket).
        """
        if not self._closing:
            self._closing = True
            self._stop_listening()

    async def wait_closed(self) -> None:
        """Wait until the server is closed, every handler has finished, every connection closed.

        Like ``asyncio.Server.wait_closed`` on Python 3.12+, whatever the Python version.
        """
        await self._wait_listener_closed()
        # A connection accepted just before close() reaches the protocol factory from a
        # task the loop has already scheduled: one turn lets it register with us.
        await asyncio.sleep(0)
        while self._tasks:
            await asyncio.wait(list(self._tasks))
        while self._connections:
            await self._connections.pop().wait_closed()

    async def __aenter__(self) -> Server:
        """Return the server itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Tear the server down: close it, cancel the handlers, abort what is still open.

        A graceful shutdown (telling clients, flushing) is the handlers' job before this.
        """
        self.close()
        for task in list(self._tasks):
            task.cancel()
        while self._tasks:
            await asyncio.wait(list(self._tasks))
        for connection in list(self._connections):
            connection.abort()
        await self.wait_closed()

    def _make_connection(self) -> StreamConnection:
        """The protocol factory handed to the event loop."""
        connection = StreamConnection(
            asyncio.get_running_loop(),
            self._peer_of,
            on_made=self._connection_made,
            read_limit=self._read_limit,
        )
        self._connections.add(connection)
        connection._closed.add_done_callback(lambda _: self._connections.discard(connection))
        return connection

    def _connection_made(self, connection: StreamConnection) -> None:
        if self._closing:  # accepted just as the server closed
            connection.abort()
            return
        task = asyncio.get_running_loop().create_task(self._run_handler(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, connection: Connection) -> None:
        try:
            await self._handler(connection)
        except Exception:
            logger.exception(
                "connection handler failed on %s (peer %s)", self.address, connection.peer
            )
        finally:
            connection.close()

    @abc.abstractmethod
    def _stop_listening(self) -> None:
        """Stop accepting, at once; release the address."""

    @abc.abstractmethod
    async def _wait_listener_closed(self) -> None:
        """Wait until the listening endpoint is fully closed."""
