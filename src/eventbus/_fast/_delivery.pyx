# cython: language_level=3, annotation_typing=False
"""A client's read pass over the frames the broker sent it, compiled twin of
``eventbus._delivery`` (the rules are documented there).

An event is read straight from its bytes into the client's envelope class, matched by a C
call on the trie's cache, appended to per-mailbox batches and gap-checked on the client's
``seen`` dict here; only a gap, a reply and a control frame call back into Python.
"""

from cpython.dict cimport PyDict_GetItemWithError
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport uint64_t

from ._trie cimport TopicTrie
from ._wire cimport EventView, read_event, read_kind

from collections import deque

__all__ = ["Delivery", "Mailbox"]

cdef enum:
    C_KIND_EVENT = 9    # the Frame field of an EventEnvelope


cdef class Mailbox:
    """The receiving end of a subscription: its queue, the reader waiting on it, its bound,
    and the iteration's common case (an envelope is queued): one compiled coroutine."""

    cdef public Py_ssize_t max_pending
    cdef public str group
    cdef public object _queue
    cdef public object _waiter
    cdef public bint _ended
    cdef public object _space
    cdef list _batch
    cdef Py_ssize_t _room

    def __init__(self, Py_ssize_t max_pending, str group):
        self.max_pending = max_pending
        self.group = group
        self._queue = deque()
        self._waiter = None
        self._ended = False
        self._space = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        queue = self._queue
        if queue:   # the common case, without a second coroutine
            envelope = queue.popleft()
            if self._space is not None:
                self._taken()
            return envelope
        return await self._next()

    async def _next(self):
        """The next envelope when the queue is empty; a bare mailbox ends there (a
        subscription waits for the next event)."""
        queue = self._queue
        if queue:
            envelope = queue.popleft()
            self._taken()
            return envelope
        raise StopAsyncIteration

    def _taken(self):
        """An envelope was taken: a reader awaiting room is woken once half the bound is
        free, so reading resumes a half-queue at a time, not an event at a time."""
        space = self._space
        if space is not None and len(self._queue) <= self.max_pending >> 1 and not space.done():
            space.set_result(None)


cdef class Delivery:
    """One client's read pass, with its callbacks (see ``eventbus._delivery``)."""

    cdef type _envelope
    cdef dict _seen
    cdef object _handle
    cdef object _inbox
    cdef object _gap
    cdef str _prefix

    def __init__(self, type envelope, dict seen, handle, inbox, gap, str inbox_prefix):
        if not issubclass(envelope, EventView):
            raise TypeError(f"{envelope!r} is not an EventView")
        self._envelope = envelope
        self._seen = seen
        self._handle = handle
        self._inbox = inbox
        self._gap = gap
        self._prefix = inbox_prefix

    def run(self, list bodies, Py_ssize_t start, TopicTrie trie not None):
        """Deliver ``bodies[start:]``; None when all of it was, else where it stopped."""
        cdef list touched = []
        cdef Py_ssize_t index
        cdef Py_ssize_t k
        cdef bytes body
        cdef EventView envelope
        cdef str topic
        cdef tuple entry
        cdef tuple boxes
        cdef Mailbox box
        cdef list full
        cdef bint numbered
        try:
            for index in range(start, len(bodies)):
                body = bodies[index]
                if read_kind(body) != C_KIND_EVENT:
                    self._handle(body)
                    continue
                envelope = read_event(body, self._envelope)
                topic = envelope.topic
                if topic.startswith(self._prefix):
                    self._inbox(envelope)
                    continue
                entry = trie._lookup(topic)
                boxes = <tuple>PyTuple_GET_ITEM(entry, 0)
                if PyTuple_GET_SIZE(<tuple>PyTuple_GET_ITEM(entry, 1)):
                    boxes = trie.match(topic)   # with queue values too, as the twin's match
                full = None
                numbered = False
                for k in range(PyTuple_GET_SIZE(boxes)):
                    box = <Mailbox?>PyTuple_GET_ITEM(boxes, k)
                    if not box.group:
                        numbered = True
                    if box._batch is None:
                        box._batch = []
                        box._room = box.max_pending - len(box._queue)
                        touched.append(box)
                    if len(box._batch) >= box._room and not box._ended:
                        if full is None:
                            full = [box]
                        else:
                            full.append(box)
                    else:
                        box._batch.append(envelope)
                if numbered:
                    self._check(envelope, topic)
                if full is not None:
                    return index, envelope, full
            return None
        finally:
            _flush(touched)

    cdef int _check(self, EventView envelope, str topic) except -1:
        cdef PyObject* last
        cdef tuple key
        cdef uint64_t sequence
        if not envelope._ids_read:
            envelope._read_ids()
        sequence = envelope._sequence
        if sequence == 0 or envelope._instance_id == 0:
            return 0    # not numbered by its publisher
        key = (envelope._instance_id, topic)
        seen = self._seen
        last = PyDict_GetItemWithError(seen, key)
        if last is not NULL and <uint64_t><object>last + 1 == sequence:  # the next one
            del seen[key]
            seen[key] = sequence
        else:
            self._gap(envelope, envelope._instance_id, sequence, topic)
        return 0


cdef int _flush(list touched) except -1:
    cdef Mailbox box
    cdef list batch
    for box in touched:
        batch = box._batch
        box._batch = None
        if batch:
            box._queue.extend(batch)
            waiter = box._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
    return 0
