"""`StreamConnection`: the connection on an asyncio byte-stream transport.

It is the one ``asyncio.Protocol`` used by both the Unix-socket and the Windows named-pipe
transports: the protocol object *is* the connection, so a received chunk goes from
``data_received`` to a waiting ``read()`` without a task or a queue in between.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable
from typing import cast

from ..errors import ConnectionLost
from ._connection import (
    DEFAULT_READ_LIMIT,
    UNKNOWN_PEER,
    Connection,
    PeerLookup,
    PeerProcess,
    Receiver,
)

__all__ = ["StreamConnection"]

logger = logging.getLogger("eventbus.transport")


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
        "_receiver",
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
        self._receiver: Receiver | None = None
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
        receiver = self._receiver
        if receiver is not None:
            receiver.data(data)
            return
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
        self._end_receiving()
        # Keep the sending side open: the frames that came before the end of stream are
        # still answered, and the owner closes the connection once it has seen the end.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._process is not None:
            self._process.release()
        self._eof = True
        if exc is not None and self._exc is None:
            self._exc = exc
        self._wake_reader()
        self._end_receiving()
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

    def start_receiving(self, receiver: Receiver) -> None:
        if self._waiter is not None:
            raise RuntimeError("start_receiving() called while a coroutine is reading")
        self._receiver = receiver
        if self._chunks:
            data = b"".join(self._chunks)
            self._chunks = []
            self._buffered = 0
            if self._limit_paused:  # nothing is buffered here any more
                self._limit_paused = False
                if not self._user_paused:
                    self._resume_transport()
            receiver.data(data)
        if self._eof:
            self._end_receiving()

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

    def drain_needed(self) -> bool:
        return self._write_paused or self._closed.done()

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

    def _end_receiving(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            receiver.end(self._lost_error() if self._exc is not None else None)

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
