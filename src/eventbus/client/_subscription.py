"""A subscription as the application sees it: a bounded queue of envelopes."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING

from .._backend import Mailbox
from ..errors import ConnectionLost, Timeout
from ._envelope import Envelope

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Ended", "Subscription"]


class Subscription(Mailbox):
    """Events of one topic filter: an async iterator, and a context manager that unsubscribes.

    Iteration ends when the subscription or the client is closed; it raises
    :class:`ConnectionLost` if the connection to the broker was lost instead.
    """

    _queue: deque[Envelope]

    def __init__(
        self, client: Client, sub_id: int, topic_filter: str, group: str, max_pending: int
    ) -> None:
        # The queue, its reader's waiter, group, max_pending and _ended are the Mailbox's.
        super().__init__(max_pending, group)
        self.id = sub_id
        self.filter = topic_filter
        #: When the broker acknowledged it (monotonic ns; 0 until then).
        self.active_since = 0
        self._client = client
        self._end: BaseException | None = None

    @property
    def pending(self) -> int:
        """Events received and not yet taken."""
        return len(self._queue)

    def __aiter__(self) -> Subscription:
        return self

    if TYPE_CHECKING:  # Mailbox.__anext__, which takes an envelope already queued itself

        async def __anext__(self) -> Envelope: ...

    async def _next(self) -> Envelope:
        # get() without a timeout, its wait written out here: one coroutine fewer to
        # resume for each event an idle reader is woken for.
        queue = self._queue
        while not queue:
            if self._ended:
                if self._end is not None:
                    raise self._end
                raise StopAsyncIteration
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        envelope = queue.popleft()
        self._taken()
        return envelope

    async def get(self, timeout: float | None = None) -> Envelope:
        """The next event; raises :class:`Timeout` after ``timeout`` seconds without one."""
        queue = self._queue
        while not queue:
            if self._ended:
                if self._end is not None:
                    raise self._end
                raise Ended
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
        self._taken()
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


class Ended(Exception):
    """Raised inside the client when a subscription or the client ended without an error."""
