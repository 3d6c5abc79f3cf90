"""A client's read pass over the frames the broker sent it, pure-Python reference of
``_fast/_delivery.pyx``.

:meth:`Delivery.run` takes the frame bodies of one received chunk in order. An event
becomes one envelope (an instance of the class the client gives, a subclass of
``EventView``) that goes:

- to the reply awaited on its topic, when the topic is a reply inbox (``$INBOX.``...);
- else to every mailbox (subscription) whose filter matches, through the client's trie.
  A pass appends its events to each mailbox's queue at once, when it ends, and wakes the
  reader waiting on it once; a mailbox already holding ``max_pending`` envelopes (counting
  those of this pass) is full, and the pass stops at that event: it returns the event's
  index, the envelope, and the mailboxes that did not take it (those with room did). A
  mailbox that ended takes everything.

When a plain (group-less) mailbox matched, the event's publisher sequence is checked
against the last one seen of its stream, ``(instance id, topic)``, in the client's
``seen`` dict: the next one in order only moves the stream to the end of the dict (it is
kept in order of use), anything else is handed to the client's ``gap`` callback, which
owns the rest of the rule (see ``client/_sequences.py``). Every other frame goes to the
client's ``handle`` callback, in its place in the pass. A frame that is not one, or an
event that is malformed, raises :class:`ProtocolError`; that or an exception from a callback
stops the pass, and what came before it is delivered all the same.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from google.protobuf.message import DecodeError

from ._trie import TopicTrie
from ._wire import EventView, event_view
from .errors import ProtocolError
from .v1 import frames_pb2

__all__ = ["Delivery", "Mailbox"]

_BODY: Final = "body"

Blocked = tuple[int, EventView, list["Mailbox"]]
"""Where a pass stopped: the index of the event, its envelope, the mailboxes it awaits."""


class Mailbox:
    """The receiving end of a subscription: its queue, the reader waiting on it, its bound,
    and the iteration's common case (an envelope is queued): one coroutine."""

    __slots__ = (
        "_batch",
        "_ended",
        "_queue",
        "_room",
        "_space",
        "_waiter",
        "group",
        "max_pending",
    )

    def __init__(self, max_pending: int, group: str) -> None:
        self.max_pending = max_pending
        self.group = group
        self._queue: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # Set while the client's reader awaits room in this mailbox.
        self._space: asyncio.Future[None] | None = None
        self._ended = False
        # This pass's envelopes (None: not touched yet), and how many it may take.
        self._batch: list[Any] | None = None
        self._room = 0

    def __aiter__(self) -> Mailbox:
        return self

    async def __anext__(self) -> Any:
        queue = self._queue
        if queue:  # the common case, without a second coroutine
            envelope = queue.popleft()
            if self._space is not None:
                self._taken()
            return envelope
        return await self._next()

    async def _next(self) -> Any:
        """The next envelope when the queue is empty; a bare mailbox ends there (a
        subscription waits for the next event)."""
        queue = self._queue
        if queue:
            envelope = queue.popleft()
            self._taken()
            return envelope
        raise StopAsyncIteration

    def _taken(self) -> None:
        """An envelope was taken: a reader awaiting room is woken once half the bound is
        free, so reading resumes a half-queue at a time, not an event at a time."""
        space = self._space
        if space is not None and len(self._queue) <= self.max_pending >> 1 and not space.done():
            space.set_result(None)


class Delivery:
    """One client's read pass, with its callbacks (see the module's docstring)."""

    __slots__ = ("_envelope", "_gap", "_handle", "_inbox", "_prefix", "_seen")

    def __init__(
        self,
        envelope: type[EventView],
        seen: dict[tuple[int, str], int],
        handle: Callable[[bytes], object],
        inbox: Callable[[Any], object],
        gap: Callable[[Any, int, int, str], object],
        inbox_prefix: str,
    ) -> None:
        if not (isinstance(envelope, type) and issubclass(envelope, EventView)):
            raise TypeError(f"{envelope!r} is not an EventView")
        self._envelope = envelope
        self._seen = seen
        self._handle = handle
        self._inbox = inbox
        self._gap = gap
        self._prefix = inbox_prefix

    def run(self, bodies: list[bytes], start: int, trie: TopicTrie) -> Blocked | None:
        """Deliver ``bodies[start:]``; None when all of it was, else where it stopped."""
        touched: list[Mailbox] = []
        envelope_cls = self._envelope
        prefix = self._prefix
        parse = frames_pb2.Frame.FromString
        try:
            for index in range(start, len(bodies)):
                body = bodies[index]
                try:
                    frame = parse(body)
                except DecodeError as exc:
                    raise ProtocolError(
                        f"frame of {len(body)} bytes does not parse: {exc}"
                    ) from None
                if frame.WhichOneof(_BODY) != "event":
                    self._handle(body)
                    continue
                envelope = event_view(envelope_cls, frame.event)
                topic = envelope.topic
                if topic.startswith(prefix):
                    self._inbox(envelope)
                    continue
                full: list[Mailbox] | None = None
                numbered = False
                for box in trie.match(topic):
                    assert isinstance(box, Mailbox)
                    if not box.group:
                        numbered = True
                    batch = box._batch
                    if batch is None:
                        batch = box._batch = []
                        box._room = box.max_pending - len(box._queue)
                        touched.append(box)
                    if len(batch) >= box._room and not box._ended:
                        full = [box] if full is None else [*full, box]
                    else:
                        batch.append(envelope)
                if numbered:
                    self._check(envelope, topic)
                if full is not None:
                    return index, envelope, full
            return None
        finally:
            _flush(touched)

    def _check(self, envelope: EventView, topic: str) -> None:
        instance_id, sequence = envelope._publisher_ids()
        if not (sequence and instance_id):
            return  # not numbered by its publisher
        key = (instance_id, topic)
        seen = self._seen
        last = seen.get(key)
        if last is not None and sequence == last + 1:  # the common case: the next one
            del seen[key]
            seen[key] = sequence
        else:
            self._gap(envelope, instance_id, sequence, topic)


def _flush(touched: list[Mailbox]) -> None:
    for box in touched:
        batch = box._batch
        box._batch = None
        if batch:
            box._queue.extend(batch)
            waiter = box._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
