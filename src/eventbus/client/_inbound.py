"""What a client does with each frame the broker sends it.

Events go to the subscriptions whose filters match (gap-checked on the way), each read pass
as one batch (``_backend.Delivery``); answers to the requests awaiting them, drop reports
to the counters and callback, errors and goodbyes to whoever they concern. An event for a
full subscription pauses reading: the rest of that chunk waits in a task until there is
room, so the broker, not this process, holds what the application has not taken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._backend import Delivery
from ..errors import ConnectionLost, ProtocolError
from ..framestream import FrameStream
from ..protocol import CLOSING_CODES, INBOX_PREFIX, exception_for, read_frame
from ..v1 import frames_pb2
from ._envelope import Envelope
from ._routes import Routes
from ._sequences import GapTracker
from ._subscription import Ended, Subscription

if TYPE_CHECKING:
    from .._delivery import Blocked

__all__ = ["Inbound"]

log = logging.getLogger("eventbus.client")


class Inbound:
    """The receiving half of a client, kept across its reconnections."""

    __slots__ = (
        "_closing",
        "_delivery",
        "_unblocking",
        "dropped",
        "gaps",
        "on_dropped",
        "replies",
        "requests",
        "routes",
        "stream",
    )

    def __init__(
        self,
        routes: Routes,
        gaps: GapTracker,
        on_dropped: Callable[[int], None] | None,
        closing: Callable[[], bool],
    ) -> None:
        self.routes = routes
        self.gaps = gaps
        self.on_dropped = on_dropped
        #: Events the broker reported lost on the way to this client.
        self.dropped = 0
        #: Answers awaited, by request id (a ping's by its nonce).
        self.requests: dict[int, asyncio.Future[Any]] = {}
        #: Replies awaited, by inbox topic.
        self.replies: dict[str, asyncio.Future[Envelope]] = {}
        #: The current connection's frames.
        self.stream: FrameStream | None = None
        self._closing = closing
        # The read pass checks the common case of the gap rule (the next sequence of a
        # stream) on the tracker's own dict, and hands it the rest.
        self._delivery = Delivery(
            Envelope, gaps._last_seen, self._handle, self._reply, self._gap, INBOX_PREFIX
        )
        # Delivers to subscriptions that were full, while reading is paused.
        self._unblocking: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """The connection ended: no more deliveries from it."""
        if self._unblocking is not None:
            self._unblocking.cancel()
            self._unblocking = None

    def feed(self, bodies: list[bytes]) -> None:
        """Act on the frames of one received chunk, from the transport's data_received.

        An event for a full subscription pauses reading: the rest waits in a task until
        there is room, so the broker, not this process, holds what the application has
        not taken.
        """
        blocked = self._delivery.run(bodies, 0, self.routes.trie)
        if blocked is not None:
            stream = self.stream
            assert stream is not None
            stream.pause()
            self._unblocking = asyncio.get_running_loop().create_task(
                self._unblock(stream, bodies, blocked)
            )

    async def _unblock(
        self, stream: FrameStream, bodies: list[bytes], blocked: Blocked | None
    ) -> None:
        """Hand the blocked event to the subscriptions that were full as each makes room,
        then deliver the rest of the chunk, as often as it blocks again."""
        try:
            while blocked is not None:
                index, envelope, full = blocked
                for sub in full:
                    assert isinstance(sub, Subscription)
                    while sub._full():
                        await sub._wait_space()
                    sub._push(envelope)  # type: ignore[arg-type]  # an Envelope
                blocked = self._delivery.run(bodies, index + 1, self.routes.trie)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            stream.fail(exc)
            return
        finally:
            if self._unblocking is asyncio.current_task():
                self._unblocking = None
        stream.resume()

    def _reply(self, envelope: Envelope) -> None:
        reply = self.replies.get(envelope.topic)
        if reply is not None and not reply.done():
            reply.set_result(envelope)

    def _gap(self, envelope: Envelope, instance_id: int, sequence: int, topic: str) -> None:
        self.gaps.observe(envelope, instance_id, sequence, topic, self.routes.subscribed_since)

    def _handle(self, body: bytes) -> None:
        """Act on one frame other than an event (the read pass delivers those)."""
        kind, message = read_frame(body)
        if kind == "sub_ack":
            self.routes.active(message.request_id)
            self._answer(message.request_id, message)
        elif kind in ("unsub_ack", "pub_ack", "list_reply", "kick_reply"):
            self._answer(message.request_id, message)
        elif kind == "pong":
            self._answer(message.nonce, message)
        elif kind == "error":
            self._on_error(message)
        elif kind == "dropped":
            self.dropped += message.count
            self.gaps.dropped(message.streams)
            log.warning(
                "broker dropped %d event(s) bound for this client (%d in all)",
                message.count,
                message.total,
            )
            if self.on_dropped is not None:
                self.on_dropped(message.count)
        elif kind == "goodbye":
            if not self._closing():
                raise ConnectionLost(f"broker said goodbye: {message.reason}")
            raise Ended
        elif kind is None:
            raise ProtocolError(f"a frame of {len(body)} bytes with no body this client knows")
        else:
            raise ProtocolError(f"unexpected {kind} frame from the broker")

    def _answer(self, request_id: int, message: Any) -> None:
        future = self.requests.get(request_id)
        if future is not None and not future.done():
            future.set_result(message)

    def _on_error(self, error: frames_pb2.Error) -> None:
        exc = exception_for(error)
        future = self.requests.get(error.request_id) if error.request_id else None
        if future is not None and not future.done():
            future.set_exception(exc)
        elif error.code in CLOSING_CODES:
            raise exc
        else:
            log.warning("broker: %s", exc)

    def fail(self, error: BaseException) -> None:
        for future in self.requests.values():
            if not future.done():
                future.set_exception(error)
        for reply in self.replies.values():
            if not reply.done():
                reply.set_exception(error)
