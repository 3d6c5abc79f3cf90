# cython: language_level=3, annotation_typing=False
"""A connection's outbound side at the broker, compiled twin of ``eventbus._outbox``.

The rules are the twin's, documented there; here the counters are C integers and a
delivery from :func:`fan_out` is a C call.
"""

from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_SIZE

import struct

from eventbus.v1 import frames_pb2

__all__ = ["FLUSH_AT", "MAX_DROPPED_STREAMS", "Outbox", "fan_out", "write_out"]

cdef enum:
    _FLUSH_AT = 64 * 1024
    _MAX_DROPPED_STREAMS = 1024

FLUSH_AT = _FLUSH_AT
MAX_DROPPED_STREAMS = _MAX_DROPPED_STREAMS


cdef class Outbox:
    """Frames queued for one connection and the accounting of its dropped events."""

    def __init__(self, write, buffered, Py_ssize_t outbound_limit, list dirty):
        self._write = write
        self._buffered = buffered
        self.outbound_limit = outbound_limit
        self._dirty = dirty
        self._out = []
        self._out_bytes = 0
        self.dropped_streams = {}
        self.publisher_field = b""

    @property
    def queued(self):
        """Bytes waiting for this peer: in the transport, and queued in this pass."""
        return <Py_ssize_t>self._buffered() + self._out_bytes

    def deliver(self, bytes data, stream=None):
        """Queue one encoded event; False when it was dropped for this connection."""
        return self._deliver(data, stream)

    cdef bint _deliver(self, bytes data, object stream) except -1:
        cdef Py_ssize_t queued
        if self.closed:
            return False
        if self._out_bytes >= _FLUSH_AT:
            self.flush()
        queued = <Py_ssize_t>self._buffered() + self._out_bytes
        if self.shedding:
            if queued > self.outbound_limit // 4:
                self._drop(stream)
                return False
            self.shedding = False
        if queued + PyBytes_GET_SIZE(data) > self.outbound_limit:
            self._drop(stream)
            return False
        if self.dropped_pending:
            self._queue(self.drop_report())
        self._queue(data)
        self.messages_out += 1
        return True

    def queue(self, bytes data):
        """Queue ``data`` for the next flush, whatever the limit."""
        self._queue(data)

    cdef int _queue(self, bytes data) except -1:
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
        if PyList_GET_SIZE(self._out) == 0:
            self._dirty.append(self)
        self._out.append(data)
        self._out_bytes += size
        self.bytes_out += size
        return 0

    def flush(self):
        """Hand what was queued to the transport: one write for many frames."""
        cdef list out = self._out
        cdef Py_ssize_t n = PyList_GET_SIZE(out)
        if n:
            self._write(out[0] if n == 1 else b"".join(out))
            self._out = []
            self._out_bytes = 0

    cdef int _drop(self, object stream) except -1:
        cdef dict streams
        self.dropped_pending += 1
        self.dropped_total += 1
        if stream is not None:
            streams = self.dropped_streams
            if stream in streams:
                streams[stream] += 1
            elif len(streams) < _MAX_DROPPED_STREAMS:
                streams[stream] = 1
        self.dropped()
        return 0

    def dropped(self):
        """Called after each drop; the broker's session watches the drain from here."""

    def drop_report(self):
        """The Dropped frame (length-prefixed) of the drops since the last report, which
        it resets; the total counts every drop of the connection."""
        count = self.dropped_pending
        self.dropped_pending = 0
        streams = [
            frames_pb2.DroppedStream(instance_id=instance_id, topic=topic, count=n)
            for (instance_id, topic), n in self.dropped_streams.items()
        ]
        self.dropped_streams = {}
        dropped = frames_pb2.Dropped(count=count, total=self.dropped_total, streams=streams)
        body = frames_pb2.Frame(dropped=dropped).SerializeToString()
        return struct.pack("<I", len(body)) + body


cdef inline int _hand(object item, bytes data, str reply_to, object stream) except -2:
    """1: delivered to ``item`` (an Outbox), 0: dropped for it, -1: it is closing."""
    cdef Outbox session = <Outbox?>item
    if session.closed:  # being disconnected: neither delivered nor a loss
        return -1
    if not session._deliver(data, stream):
        return 0
    if reply_to:
        session.allow_reply(reply_to)
    return 1


def fan_out(sessions, groups, bytes data, str reply_to, stream):
    """Deliver ``data`` to every connection of ``sessions`` and to the member each of
    ``groups`` picks, each connection once; ``(delivered, dropped)`` (see the twin)."""
    cdef Py_ssize_t delivered = 0
    cdef Py_ssize_t dropped = 0
    cdef int outcome
    cdef set seen
    for item in sessions:
        outcome = _hand(item, data, reply_to, stream)
        if outcome == 1:
            delivered += 1
        elif outcome == 0:
            dropped += 1
    if not groups:
        return delivered, dropped
    seen = set(sessions)
    for group in groups:
        item = group.pick()
        if item in seen:
            continue
        seen.add(item)
        outcome = _hand(item, data, reply_to, stream)
        if outcome == 1:
            delivered += 1
        elif outcome == 0:
            dropped += 1
    return delivered, dropped


def write_out(list dirty not None, bint watch):
    """Flush every outbox of ``dirty`` and empty it; with ``watch``, those over half their
    limit before their write, or None (see the twin)."""
    cdef list fed = None
    cdef Outbox box
    cdef Py_ssize_t k = 0
    if not PyList_GET_SIZE(dirty):
        return None
    if watch:
        for item in dirty:
            box = <Outbox?>item
            if <Py_ssize_t>box._buffered() + box._out_bytes > box.outbound_limit >> 1:
                if fed is None:
                    fed = [box]
                else:
                    fed.append(box)
    # By index, as the list stands at each step: an outbox a write queued meanwhile is
    # written too, as the twin's loop does.
    while k < PyList_GET_SIZE(dirty):
        (<Outbox?>dirty[k]).flush()
        k += 1
    del dirty[:]
    return fed
