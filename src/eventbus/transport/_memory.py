"""An in-process connected pair of connections: no socket, same interface and semantics.

What one side writes is appended straight to the other side's receive buffer; "handed to
the OS" has no meaning here, so the write buffer of a side is what its peer has not read
yet, and `drain` waits on the peer's reading.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable

from ..errors import ConnectionLost
from ._connection import (
    DEFAULT_HIGH_WATER,
    DEFAULT_LOW_WATER,
    Connection,
    PeerCredentials,
    Receiver,
)

__all__ = ["MemoryConnection", "memory_pair"]


class MemoryConnection(Connection):
    """One end of a `memory_pair`."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_closed",
        "_closed_event",
        "_delivery",
        "_drain_waiters",
        "_eof",
        "_high",
        "_low",
        "_peer",
        "_reading_paused",
        "_receiver",
        "_waiter",
        "peer",
    )

    def __init__(self, peer: PeerCredentials) -> None:
        """Create an unconnected end; `memory_pair` links two of them."""
        self.peer = peer
        self._peer: MemoryConnection | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._closed = False
        self._closed_event: asyncio.Event | None = None
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._high = DEFAULT_HIGH_WATER
        self._low = DEFAULT_LOW_WATER
        self._reading_paused = False
        self._receiver: Receiver | None = None
        self._delivery: asyncio.Handle | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MemoryConnection {state}, {self._buffered} bytes unread>"

    async def read(self) -> bytes:
        if not self._chunks:
            if self._eof:
                return b""
            if self._waiter is not None:
                raise RuntimeError("read() called while another coroutine is already reading")
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
            if not self._chunks:
                return b""
        chunks = self._chunks
        self._chunks = []
        self._buffered = 0
        writer = self._peer
        if writer is not None and writer._drain_waiters:
            writer._wake_drainers(lost=False)
        return b"".join(chunks)

    def start_receiving(self, receiver: Receiver) -> None:
        if self._waiter is not None:
            raise RuntimeError("start_receiving() called while a coroutine is reading")
        self._receiver = receiver
        self._deliver()

    def _deliver(self) -> None:
        """Hand what was written to the receiver: from the loop, never inside the writer's
        own call, as a socket would."""
        self._delivery = None
        receiver = self._receiver
        if receiver is None or self._reading_paused:
            return
        if self._chunks:
            data = b"".join(self._chunks)
            self._chunks = []
            self._buffered = 0
            writer = self._peer
            if writer is not None and writer._drain_waiters:
                writer._wake_drainers(lost=False)
            receiver.data(data)
        if self._eof and not self._chunks and self._receiver is receiver:
            self._receiver = None
            receiver.end(None)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        peer = self._peer
        if self._closed or peer is None or not data:
            return
        chunk = bytes(data)  # the caller may reuse a bytearray; a bytes object is not copied
        peer._chunks.append(chunk)
        peer._buffered += len(chunk)
        peer._wake_reader()

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def write_buffer_size(self) -> int:
        peer = self._peer
        return 0 if peer is None else peer._buffered

    async def drain(self) -> None:
        peer = self._peer
        if self._closed or peer is None:
            raise ConnectionLost("connection closed (memory pair)")
        if peer._buffered <= self._high:
            return
        while peer._buffered > self._low:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._drain_waiters:  # cancelled while waiting
                    self._drain_waiters.remove(waiter)
            if self._closed or self._peer is None:
                raise ConnectionLost("connection closed (memory pair)")

    def set_write_buffer_limits(self, high: int, low: int | None = None) -> None:
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high = high
        self._low = low
        self._wake_drainers(lost=False)  # let waiters re-check against the new watermarks

    def pause_reading(self) -> None:
        # read() takes bytes only when called, so a paused reader pushes back by not
        # calling it; a receiver is simply not handed any until resume_reading().
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False
        self._schedule_delivery()

    def _schedule_delivery(self) -> None:
        if self._receiver is not None and self._delivery is None:
            self._delivery = asyncio.get_running_loop().call_soon(self._deliver)

    def close(self) -> None:
        self._shut(drop_unread=False)

    def abort(self) -> None:
        self._shut(drop_unread=True)

    def is_closing(self) -> bool:
        return self._closed

    def peer_alive(self) -> bool:
        return True  # the peer is this very process

    async def wait_closed(self) -> None:
        if self._closed:
            return
        if self._closed_event is None:
            self._closed_event = asyncio.Event()
        await self._closed_event.wait()

    # -- internals ----------------------------------------------------------------------

    def _shut(self, *, drop_unread: bool) -> None:
        """Close this end; the peer reads what it was sent (unless dropped), then EOF."""
        peer = self._peer
        self._peer = None
        if peer is not None:
            if drop_unread:
                peer._chunks.clear()
                peer._buffered = 0
            peer._peer_gone()
        self._mark_closed()

    def _peer_gone(self) -> None:
        self._eof = True
        self._peer = None
        self._wake_reader()
        self._mark_closed()

    def _mark_closed(self) -> None:
        self._closed = True
        self._eof = True
        self._wake_reader()
        self._wake_drainers(lost=True)
        if self._closed_event is not None:
            self._closed_event.set()

    def _wake_reader(self) -> None:
        self._schedule_delivery()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake_drainers(self, *, lost: bool) -> None:
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                if lost:
                    waiter.set_exception(ConnectionLost("connection closed (memory pair)"))
                else:
                    waiter.set_result(None)


def memory_pair(credentials: PeerCredentials) -> tuple[MemoryConnection, MemoryConnection]:
    """Return two connected in-process connections, each seeing ``credentials`` as its peer."""
    left = MemoryConnection(credentials)
    right = MemoryConnection(credentials)
    left._peer = right
    right._peer = left
    return left, right
