# cython: language_level=3, annotation_typing=False
"""What a client sends on one connection, compiled twin of ``eventbus._sending`` (the
rules are documented there).

An unconfirmed publish is checked on the rights table's cached mask, numbered on the
sequences' dicts and encoded into one ``bytes`` by C calls; the only Python calls left are
the transport's (a write for the first frame of a loop turn and one for the rest of it,
and whether its drain could wait).
"""

from cpython.bytearray cimport PyByteArray_CheckExact
from cpython.bytes cimport PyBytes_CheckExact
from cpython.dict cimport PyDict_GetItemWithError, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsUnsignedLongLong
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_CheckExact
from libc.stdint cimport uint64_t

from ._encode cimport publish_frame
from ._rights cimport RightsTable

import asyncio
import time

cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    Py_UCS4 PyUnicode_READ_CHAR(object text, Py_ssize_t index)

__all__ = ["WRITE_AT", "Sender", "Sequences"]

WRITE_AT = 64 * 1024

cdef enum:
    C_PUBLISH = 1

cdef object _monotonic_ns = time.monotonic_ns


cdef class Sequences:
    """The next sequence of each topic a client publishes to, and when each began."""

    cdef dict _last
    cdef dict _started

    def __init__(self):
        self._last = {}
        self._started = {}

    def next(self, str topic):
        """The event's sequence, and when sequence 1 of its topic was numbered."""
        cdef uint64_t started
        cdef uint64_t sequence = self._next(topic, &started)
        return sequence, started

    cdef uint64_t _next(self, str topic, uint64_t* started) except 0:
        cdef PyObject* last = PyDict_GetItemWithError(self._last, topic)
        cdef uint64_t sequence = 1
        cdef object start
        if last is not NULL:
            sequence = PyLong_AsUnsignedLongLong(<object>last) + 1
        PyDict_SetItem(self._last, topic, sequence)
        if sequence == 1:
            start = _monotonic_ns()
            PyDict_SetItem(self._started, topic, start)
        else:
            start = <object>PyDict_GetItemWithError(self._started, topic)
        started[0] = PyLong_AsUnsignedLongLong(start)
        return sequence


cdef class Sender:
    """One connection's outgoing frames, coalesced, and its unconfirmed publishes."""

    cdef object _write
    cdef object _drain_needed
    cdef object _call_soon
    cdef object _handle
    cdef RightsTable _table
    cdef Sequences _sequences
    cdef Py_ssize_t _max_frame
    cdef Py_ssize_t _write_at
    cdef list _out
    cdef public Py_ssize_t queued
    cdef public bint publishing

    def __init__(
        self,
        conn,
        RightsTable table not None,
        Sequences sequences not None,
        max_frame=None,
        Py_ssize_t write_at=WRITE_AT,
    ):
        self._write = conn.write
        self._drain_needed = conn.drain_needed
        self._call_soon = asyncio.get_running_loop().call_soon
        self._handle = None
        self._table = table
        self._sequences = sequences
        self._max_frame = -1 if max_frame is None else max_frame
        self._write_at = write_at
        self._out = []
        self.queued = 0
        self.publishing = False

    def send(self, bytes data not None):
        """Send a frame: the first of a loop turn at once, the rest at its end, in order.
        Returns whether the transport's drain could wait or raise now."""
        self._queue(data)
        return self._drain_needed()

    cdef int _queue(self, bytes data) except -1:
        if self._handle is None:
            # Written before the end of the turn is scheduled: a lone event waits for
            # nothing. The unbound method: a bound one kept here would make a cycle, and
            # hold the connection until the cycle collector ran.
            self._write(data)
            self._handle = self._call_soon(_write_out, self)
        else:
            self._out.append(data)
            self.queued += len(data)
            if self.queued >= self._write_at:
                self.write_out()
        return 0

    def publish(self, topic, payload):
        """Queue an unconfirmed publish: 0, or 1 when the drain could wait or raise now;
        -1 leaves it to the client, untouched."""
        cdef uint64_t started
        cdef uint64_t sequence
        if (
            not self.publishing
            or not PyUnicode_CheckExact(topic)
            or PyUnicode_GET_LENGTH(topic) == 0
            or PyUnicode_READ_CHAR(topic, 0) == u"$"
            or not (self._table._mask(topic) & C_PUBLISH)
        ):
            return -1
        if not PyBytes_CheckExact(payload) and not PyByteArray_CheckExact(payload):
            return -1
        sequence = self._sequences._next(<str>topic, &started)
        self._queue(
            publish_frame(<str>topic, payload, 0, b"", "", sequence, started, self._max_frame)
        )
        return 1 if self._drain_needed() else 0

    def write_out(self):
        """Hand every queued frame to the transport now, in one write."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        cdef list out = self._out
        cdef Py_ssize_t n = PyList_GET_SIZE(out)
        if n:
            self._out = []
            self.queued = 0
            self._write(<object>PyList_GET_ITEM(out, 0) if n == 1 else b"".join(out))

    def discard(self):
        """The connection is gone: what was queued goes nowhere, and nothing more is taken."""
        self.publishing = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._out = []
        self.queued = 0


cdef object _write_out = Sender.write_out
