"""What a client does with each frame the broker sends it.

Events go to the subscriptions whose filters match (gap-checked on the way), answers to the
requests awaiting them, drop reports to the counters and callback, errors and goodbyes to
whoever they concern. An event for a full subscription pauses reading: the rest of that
chunk waits in a task until there is room, so the broker, not this process, holds what the
application has not taken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..errors import ConnectionLost, ProtocolError
from ..framestream import FrameStream
from ..protocol import CLOSING_CODES, INBOX_PREFIX, exception_for, read_frame
from ..v1 import frames_pb2
from ._envelope import Envelope
from ._routes import Routes
from ._sequences import GapTracker
from ._subscription import Ended, Subscription

__all__ = ["Inbound"]

log = logging.getLogger("eventbus.client")


class Inbound:
    """The receiving half of a client, kept across its reconnections."""

    __slots__ = (
        "_closing",
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
        handle = self._handle
        for index, body in enumerate(bodies):
            blocked = handle(body)
            if blocked is not None:
                stream = self.stream
                assert stream is not None
                stream.pause()
                rest = bodies[index + 1 :]
                self._unblocking = asyncio.get_running_loop().create_task(
                    self._unblock(stream, blocked, rest)
                )
                return

    async def _unblock(
        self,
        stream: FrameStream,
        blocked: tuple[Envelope, list[Subscription]],
        rest: list[bytes],
    ) -> None:
        try:
            await self._deliver_rest(blocked)
            for body in rest:
                await self._deliver_rest(self._handle(body))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            stream.fail(exc)
            return
        finally:
            if self._unblocking is asyncio.current_task():
                self._unblocking = None
        stream.resume()

    async def _deliver_rest(self, blocked: tuple[Envelope, list[Subscription]] | None) -> None:
        """Hand an event to the subscriptions that were full, as each makes room."""
        if blocked is not None:
            envelope, subs = blocked
            for sub in subs:
                while sub._full():
                    await sub._wait_space()
                sub._push(envelope)

    def _handle(self, body: bytes) -> tuple[Envelope, list[Subscription]] | None:
        """Act on one frame; for an event, return the subscriptions too full to take it."""
        kind, message = read_frame(body)
        if kind == "event":
            envelope = Envelope(message)
            topic = message.topic
            if topic[0] == "$" and topic.startswith(INBOX_PREFIX):
                reply = self.replies.get(topic)
                if reply is not None and not reply.done():
                    reply.set_result(envelope)
                return None
            full, numbered = self.routes.deliver(envelope, topic)
            if numbered:
                sequence = message.publisher_sequence
                if sequence:
                    instance_id = message.publisher_instance_id
                    if instance_id:
                        since = self.routes.subscribed_since
                        self.gaps.observe(message, instance_id, sequence, topic, since)
            return None if full is None else (envelope, full)
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
        return None

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
