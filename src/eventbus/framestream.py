"""One connection's frames, as the broker and the client both read them.

A :class:`FrameStream` owns the connection's receive side: the handshake reads the first
frames with ``await`` (there is a deadline to keep), then :meth:`FrameStream.start` turns
the connection to push mode, and each chunk the transport receives is split into frame
bodies and handed to the handler right there, in ``data_received`` — no task, future or
queue per frame or per read (asyncpg's ``coreproto`` and uvloop's protocols work this way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ._backend import FrameSplitter
from .errors import ConnectionLost, FrameTooLarge
from .protocol import DEFAULT_MAX_FRAME
from .transport import Connection, Receiver

__all__ = ["FrameHandler", "FrameStream"]

FrameHandler = Callable[[list[bytes]], None]
"""Takes the frame bodies of one received chunk, in order; what it raises ends the stream."""


class FrameStream(Receiver):
    """Splits a connection's bytes into frame bodies and hands them on as they arrive."""

    __slots__ = (
        "_deferred",
        "_end",
        "_handler",
        "_held",
        "_paused",
        "_splitter",
        "conn",
        "received",
    )

    def __init__(self, conn: Connection, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.conn = conn
        self._splitter = FrameSplitter(max_frame)
        self._handler: FrameHandler | None = None
        self._end: asyncio.Future[BaseException | None] | None = None
        # Chunks that arrived while paused (a transport may hand over what it had read).
        self._held: list[bytes] = []
        self._paused = False
        # An oversized header that followed the first frames: it ends the stream once they
        # are served.
        self._deferred: FrameTooLarge | None = None
        #: Bytes received so far.
        self.received = 0

    @property
    def buffered(self) -> int:
        """Bytes of a frame begun and not complete (what an end of stream would cut)."""
        return self._splitter.buffered

    def resize(self, max_frame: int) -> None:
        """Take frames up to ``max_frame`` from now on (the limit a Welcome announced)."""
        splitter = FrameSplitter(max_frame)
        if self._splitter.buffered:
            raise RuntimeError("cannot change the frame limit in the middle of a frame")
        self._splitter = splitter

    async def first(self) -> list[bytes]:
        """Read until at least one whole frame is in; its bodies and any that followed."""
        while True:
            data = await self.conn.read()
            if not data:
                raise ConnectionLost("the connection closed before its first frame")
            self.received += len(data)
            try:
                bodies = self._splitter.feed(data)
            except FrameTooLarge as too_large:
                if not too_large.frames:
                    raise
                self._deferred = too_large
                return too_large.frames
            if bodies:
                return bodies

    def start(self, handler: FrameHandler) -> None:
        """Hand every frame from now on to ``handler``; :meth:`wait` tells how it ended."""
        self._handler = handler
        self._end = asyncio.get_running_loop().create_future()
        if self._deferred is not None:
            self._finish(self._deferred)
            return
        self.conn.start_receiving(self)

    async def wait(self) -> BaseException | None:
        """Until the stream ends: None at the end of stream, else what ended it (a framing
        error, a broken connection, or what the handler raised)."""
        assert self._end is not None, "start() first"
        return await asyncio.shield(self._end)

    def fail(self, error: BaseException) -> None:
        """End the stream with ``error`` (as if the handler had raised it)."""
        self._finish(error)

    def pause(self) -> None:
        """Hand nothing more to the handler until :meth:`resume`; the peer is pushed back."""
        self._paused = True
        self.conn.pause_reading()

    def resume(self) -> None:
        self._paused = False
        held, self._held = self._held, []
        for chunk in held:
            if self._paused or self._handler is None:
                self._held.append(chunk)
            else:
                self.data(chunk)
        if not self._paused:
            self.conn.resume_reading()

    # -- Receiver ------------------------------------------------------------------------

    def data(self, chunk: bytes) -> None:
        handler = self._handler
        if handler is None:
            return  # ended: nothing more is taken
        if self._paused:
            self._held.append(chunk)
            return
        self.received += len(chunk)
        try:
            try:
                bodies = self._splitter.feed(chunk)
            except FrameTooLarge as too_large:
                # Whole frames before the oversized header were sent: they are served.
                if too_large.frames:
                    handler(too_large.frames)
                raise
            if bodies:
                handler(bodies)
        except BaseException as exc:  # the handler's verdict ends the stream, whatever it is
            self._finish(exc)

    def end(self, error: BaseException | None) -> None:
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        if self._handler is None:
            return
        self._handler = None
        self._held = []
        self.conn.pause_reading()  # whatever still arrives is not ours to take
        end = self._end
        if end is not None and not end.done():
            end.set_result(error)
