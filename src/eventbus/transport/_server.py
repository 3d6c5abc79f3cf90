"""`Server`: a listening endpoint that runs a handler for each accepted connection."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from ._connection import Connection, PeerLookup
from ._stream import StreamConnection

__all__ = ["Handler", "Server"]

logger = logging.getLogger("eventbus.transport")

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
