# cython: language_level=3, annotation_typing=False
"""The per-frame hot path on the wire, compiled twin of ``eventbus._wire``.

The rules (which fields count, merging, what is refused and with which message) are the
twin's, documented there. Here a field is read by ``_next`` into a C struct, on a
``const unsigned char*`` with ``Py_ssize_t`` bounds; a fault is only turned into a Python
exception, worded as the twin words it, once the read has stopped. The encoders size the
frame first and write it into one ``bytes`` object.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from cpython.list cimport PyList_GET_ITEM, PyList_SET_ITEM
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcmp

from google.protobuf.message import DecodeError

from eventbus.errors import ProtocolError
from eventbus.v1 import frames_pb2

__all__ = [
    "FRAME_EVENT",
    "FRAME_PUBLISH",
    "FRAME_PUB_ACK",
    "EventView",
    "PubAckView",
    "PublishView",
    "decode_event",
    "decode_pub_ack",
    "decode_publish",
    "frame_kind",
]

cdef enum:
    KIND_PUBLISH = 7
    KIND_PUB_ACK = 8
    KIND_EVENT = 9
    LAST_BODY_FIELD = 18  # as _LAST_BODY_FIELD in eventbus._wire
    MAX_GROUP_DEPTH = 100

FRAME_PUBLISH = KIND_PUBLISH
FRAME_EVENT = KIND_EVENT
FRAME_PUB_ACK = KIND_PUB_ACK

cdef enum Fault:
    VARINT_END = 1
    VARINT_LONG
    TAG_OVER_32
    FIELD_ZERO
    WIRE_TYPE
    LENGTH_END
    FIXED64_END
    FIXED32_END
    GROUP_OPEN
    GROUP_STRAY
    GROUP_MISMATCH
    GROUP_DEEP
ctypedef struct Field:
    uint32_t number
    uint32_t wire
    uint64_t value      # of a varint, fixed64 or fixed32 field
    Py_ssize_t start    # of a length-delimited field's bytes
    Py_ssize_t end
    Py_ssize_t at       # where the field, or the varint that failed, begins
    Fault fault


cdef inline Py_ssize_t _varint(
    const unsigned char* p, Py_ssize_t pos, Py_ssize_t end, uint64_t* out, Field* f
) noexcept:
    """Read the varint at ``pos`` into ``out``; the position after it, or -1 (``f.fault``)."""
    cdef uint64_t value = 0
    cdef unsigned int shift = 0
    cdef unsigned char byte
    cdef Py_ssize_t start = pos
    while shift < 70:
        if pos >= end:
            f.fault = VARINT_END
            f.at = start
            return -1
        byte = p[pos]
        pos += 1
        value |= (<uint64_t>(byte & 0x7F)) << shift   # the 10th byte keeps its low bit only
        if byte < 0x80:
            out[0] = value
            return pos
        shift += 7
    f.fault = VARINT_LONG
    f.at = start
    return -1


cdef inline uint64_t _le(const unsigned char* p, int n) noexcept:
    cdef uint64_t value = 0
    cdef int k
    for k in range(n - 1, -1, -1):
        value = (value << 8) | p[k]
    return value


cdef inline Py_ssize_t _next(
    const unsigned char* p, Py_ssize_t pos, Py_ssize_t end, Field* f, int depth=0
) noexcept:
    """Read the field at ``pos < end`` into ``f``; the position after it, or -1 on a fault.
    A group is skipped whole; inside one (``depth`` > 0) its end tag is a field of wire 4."""
    cdef uint64_t tag
    cdef uint64_t length
    f.at = pos
    if p[pos] < 0x80:
        tag = p[pos]
        pos += 1
    else:
        pos = _varint(p, pos, end, &tag, f)
        if pos < 0:
            return -1
        if tag > 0xFFFFFFFF:
            f.fault = TAG_OVER_32
            return -1
    f.number = <uint32_t>(tag >> 3)
    f.wire = <uint32_t>(tag & 7)
    if f.number == 0:
        f.fault = FIELD_ZERO
        return -1
    if f.wire == 2:
        if pos < end and p[pos] < 0x80:
            length = p[pos]
            pos += 1
        else:
            pos = _varint(p, pos, end, &length, f)
            if pos < 0:
                return -1
        if length > <uint64_t>(end - pos):
            f.fault = LENGTH_END
            return -1
        f.start = pos
        f.end = pos + <Py_ssize_t>length
        return f.end
    if f.wire == 0:
        return _varint(p, pos, end, &f.value, f)
    if f.wire == 1:
        if end - pos < 8:
            f.fault = FIXED64_END
            return -1
        f.value = _le(p + pos, 8)
        return pos + 8
    if f.wire == 5:
        if end - pos < 4:
            f.fault = FIXED32_END
            return -1
        f.value = _le(p + pos, 4)
        return pos + 4
    if f.wire == 3:
        return _skip_group(p, pos, end, f, depth + 1)
    if f.wire == 4:
        if depth == 0:
            f.fault = GROUP_STRAY
            return -1
        return pos
    f.fault = WIRE_TYPE
    return -1


cdef Py_ssize_t _skip_group(
    const unsigned char* p, Py_ssize_t pos, Py_ssize_t end, Field* f, int depth
) noexcept:
    """The position after the end tag of the group ``f`` opens, or -1 (the fault in ``f``)."""
    cdef Field inner
    if depth > MAX_GROUP_DEPTH:
        f.fault = GROUP_DEEP
        return -1
    while pos < end:
        pos = _next(p, pos, end, &inner, depth)
        if pos < 0:
            f[0] = inner
            return -1
        if inner.wire == 4:
            if inner.number != f.number:
                f[0] = inner
                f.fault = GROUP_MISMATCH
                return -1
            return pos
    f.fault = GROUP_OPEN
    return -1


cdef object _error(str what, Py_ssize_t size, Field* f):
    cdef str reason
    if f.fault == VARINT_END:
        reason = "varint runs past the end"
    elif f.fault == VARINT_LONG:
        reason = "varint longer than 10 bytes"
    elif f.fault == TAG_OVER_32:
        reason = "tag over 32 bits"
    elif f.fault == FIELD_ZERO:
        reason = "field number 0"
    elif f.fault == WIRE_TYPE:
        reason = f"unsupported wire type {f.wire} in field {f.number}"
    elif f.fault == LENGTH_END:
        reason = f"length-delimited field {f.number} runs past the end"
    elif f.fault == FIXED64_END:
        reason = f"fixed64 field {f.number} runs past the end"
    elif f.fault == GROUP_OPEN:
        reason = f"group in field {f.number} is not closed"
    elif f.fault == GROUP_STRAY:
        reason = f"end-group tag in field {f.number} outside a group"
    elif f.fault == GROUP_MISMATCH:
        reason = f"end-group tag in field {f.number} does not match its group"
    elif f.fault == GROUP_DEEP:
        reason = f"groups nested deeper than {MAX_GROUP_DEPTH}"
    else:
        reason = f"fixed32 field {f.number} runs past the end"
    return ProtocolError(f"{what} of {size} bytes does not parse: {reason} at byte {f.at}")


cdef inline bytes _as_bytes(object body):
    if type(body) is bytes:
        return <bytes>body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"a frame body must be bytes-like, not {type(body).__name__}")


cdef Py_ssize_t _body_start(
    const unsigned char* p, Py_ssize_t size, uint32_t kind, str what
) except -1:
    """Check the top level; where the occurrences of Frame field ``kind`` that make the
    body begin (after the last other oneof member)."""
    cdef Field f
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t start = 0
    cdef uint32_t last = 0
    while pos < size:
        pos = _next(p, pos, size, &f)
        if pos < 0:
            raise _error(what, size, &f)
        if f.wire == 2 and f.number <= LAST_BODY_FIELD:
            last = f.number
            if last != kind:
                start = pos
    if last != kind:
        found = f"has body field {last}" if last else "has no body"
        raise ProtocolError(f"{what} expected: the frame of {size} bytes {found}")
    return start


cdef str _text(const unsigned char* p, Field* f, Py_ssize_t size, str what, str name):
    try:
        return PyUnicode_DecodeUTF8(<const char*>p + f.start, f.end - f.start, NULL)
    except UnicodeDecodeError:
        raise ProtocolError(
            f"{what} of {size} bytes does not parse: {name} is not valid UTF-8"
        ) from None


cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    void* PyUnicode_DATA(object text)

# The last ASCII topic decoded into each of 256 slots (by a hash of its bytes): a stream's
# events then share one str, whose hash the rights, trie and route caches compute once.
cdef list _TOPICS = [None] * 256


cdef str _topic(const unsigned char* p, Field* f, Py_ssize_t size, str what):
    cdef const unsigned char* raw = p + f.start
    cdef Py_ssize_t n = f.end - f.start
    cdef uint32_t h = 2166136261u
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ raw[i]) * 16777619u
    cdef Py_ssize_t slot = (h ^ (h >> 8)) & 255
    cdef object cached = <object>PyList_GET_ITEM(_TOPICS, slot)
    if (
        cached is not None
        and PyUnicode_GET_LENGTH(cached) == n
        and memcmp(PyUnicode_DATA(cached), raw, n) == 0
    ):
        return <str>cached
    cdef str text = _text(p, f, size, what, "topic")
    if PyUnicode_IS_COMPACT_ASCII(text):
        Py_INCREF(text)
        Py_DECREF(cached)
        PyList_SET_ITEM(_TOPICS, slot, text)
    return text


cdef inline bytes _slice(const unsigned char* p, Py_ssize_t start, Py_ssize_t end):
    return PyBytes_FromStringAndSize(<const char*>p + start, end - start)


# An embedded message sent more than once: the first occurrence's span, then, from the
# second on, every occurrence's bytes in ``parts`` (protobuf merges them).
ctypedef struct Merged:
    int count
    Py_ssize_t start
    Py_ssize_t end


cdef inline list _merge(Merged* m, Field* f, list parts, const unsigned char* p):
    if m.count == 0:
        m.start = f.start
        m.end = f.end
    else:
        if m.count == 1:
            parts = [_slice(p, m.start, m.end)]
        parts.append(_slice(p, f.start, f.end))
    m.count += 1
    return parts


cdef inline bytes _merged(Merged* m, list parts, const unsigned char* p):
    if m.count > 1:
        return b"".join(parts)
    return _slice(p, m.start, m.end)


def frame_kind(body):
    """The Frame field number of the ``body`` oneof member set (the last one present), or 0."""
    return read_kind(_as_bytes(body))


cdef int read_kind(bytes data) except -1:
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t pos = 0
    cdef uint32_t last = 0
    cdef Field f
    while pos < size:
        pos = _next(p, pos, size, &f)
        if pos < 0:
            raise _error("frame", size, &f)
        if f.wire == 2 and f.number <= LAST_BODY_FIELD:
            last = f.number
    return last


cdef class PubAckView:
    """A PubAck read from a frame body (see :func:`decode_pub_ack`)."""


def decode_pub_ack(body):
    """The PubAck of a frame body whose oneof member is ``pub_ack``."""
    cdef bytes data = _as_bytes(body)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef str what = "pub_ack frame"
    cdef Py_ssize_t pos = _body_start(p, size, KIND_PUB_ACK, what)
    cdef Py_ssize_t inner
    cdef Field outer
    cdef Field f
    cdef PubAckView view = PubAckView.__new__(PubAckView)
    while pos < size:
        pos = _next(p, pos, size, &outer)    # checked by _body_start
        if outer.number != KIND_PUB_ACK or outer.wire != 2:
            continue
        inner = outer.start
        while inner < outer.end:
            inner = _next(p, inner, outer.end, &f)
            if inner < 0:
                raise _error(what, size, &f)
            if f.wire == 0:
                if f.number == 1:
                    view.request_id = f.value
                elif f.number == 2:
                    view.delivered = <uint32_t>f.value
                elif f.number == 3:
                    view.dropped = <uint32_t>f.value
    return view


cdef class PublishView:
    """A Publish read from a frame body (see :func:`decode_publish`)."""


def decode_publish(body):
    """The Publish of a frame body whose oneof member is ``publish``."""
    return read_publish(_as_bytes(body))


cdef PublishView read_publish(bytes data):
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef str what = "publish frame"
    cdef Py_ssize_t pos = _body_start(p, size, KIND_PUBLISH, what)
    cdef Py_ssize_t inner
    cdef Field outer
    cdef Field f
    cdef PublishView view = PublishView.__new__(PublishView)
    cdef Py_ssize_t payload_start = 0
    cdef Py_ssize_t payload_end = 0
    cdef Merged correlation
    cdef list parts = None
    correlation.count = 0
    view.topic = view.reply_to = ""
    while pos < size:
        pos = _next(p, pos, size, &outer)    # checked by _body_start
        if outer.number != KIND_PUBLISH or outer.wire != 2:
            continue
        inner = outer.start
        while inner < outer.end:
            inner = _next(p, inner, outer.end, &f)
            if inner < 0:
                raise _error(what, size, &f)
            if f.wire == 2:
                if f.number == 2:
                    view.topic = _topic(p, &f, size, what)
                elif f.number == 3:
                    payload_start = f.start
                    payload_end = f.end
                elif f.number == 4:
                    parts = _merge(&correlation, &f, parts, p)
                elif f.number == 5:
                    view.reply_to = _text(p, &f, size, what, "reply_to")
            elif f.wire == 0:
                if f.number == 1:
                    view.request_id = f.value
                elif f.number == 6:
                    view.sequence = f.value
            elif f.wire == 1 and f.number == 7:
                view.stream_started_ns = f.value
    view.payload = _slice(p, payload_start, payload_end)
    view.correlation = _merged(&correlation, parts, p) if correlation.count else b""
    return view


cdef object _parse(object cls, bytes raw, str name):
    try:
        return cls.FromString(raw)
    except DecodeError:
        raise ProtocolError(
            f"event {name} of {len(raw)} bytes does not parse as {cls.DESCRIPTOR.full_name}"
        ) from None


cdef class EventView:
    """An EventEnvelope read from a frame body (see :func:`decode_event`)."""

    @property
    def publisher(self):
        """The publisher's identity (empty when the envelope has none)."""
        if self._publisher is None:
            self._publisher = _parse(frames_pb2.ProcessIdentity, self._publisher_raw, "publisher")
        return self._publisher

    @property
    def correlation(self):
        """The correlation metadata, or None when the envelope has none."""
        if not self._correlation_read:
            if self._correlation_raw is not None:
                self._correlation = _parse(
                    frames_pb2.CorrelationMetadata, self._correlation_raw, "correlation"
                )
            self._correlation_read = True
        return self._correlation

    @property
    def publisher_instance_id(self):
        """``publisher.instance_id``, read from the raw bytes (0 when absent)."""
        if not self._ids_read:
            self._read_ids()
        return self._instance_id

    @property
    def publisher_sequence(self):
        """``publisher.sequence``, read from the raw bytes (0 when absent)."""
        if not self._ids_read:
            self._read_ids()
        return self._sequence

    cdef int _read_ids(self) except -1:
        cdef bytes raw = self._publisher_raw
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(raw)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(raw)
        cdef Py_ssize_t pos = 0
        cdef Field f
        cdef uint64_t instance_id = 0
        cdef uint64_t sequence = 0
        while pos < size:
            pos = _next(p, pos, size, &f)
            if pos < 0:
                raise _error("event publisher", size, &f)
            if f.number == 7 and f.wire == 1:
                instance_id = f.value
            elif f.number == 8 and f.wire == 0:
                sequence = f.value
        self._instance_id = instance_id
        self._sequence = sequence
        self._ids_read = True
        return 0


def decode_event(body):
    """The EventEnvelope of a frame body whose oneof member is ``event``."""
    return read_event(_as_bytes(body), EventView)


cdef EventView read_event(bytes data, type cls):
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef str what = "event frame"
    cdef Py_ssize_t pos = _body_start(p, size, KIND_EVENT, what)
    cdef Py_ssize_t inner
    cdef Field outer
    cdef Field f
    cdef EventView view = EventView.__new__(cls)
    cdef Py_ssize_t payload_start = 0
    cdef Py_ssize_t payload_end = 0
    cdef Merged publisher
    cdef Merged correlation
    cdef list publisher_parts = None
    cdef list correlation_parts = None
    publisher.count = correlation.count = 0
    view.topic = view.reply_to = ""
    while pos < size:
        pos = _next(p, pos, size, &outer)    # checked by _body_start
        if outer.number != KIND_EVENT or outer.wire != 2:
            continue
        inner = outer.start
        while inner < outer.end:
            inner = _next(p, inner, outer.end, &f)
            if inner < 0:
                raise _error(what, size, &f)
            if f.wire == 2:
                if f.number == 1:
                    view.topic = _topic(p, &f, size, what)
                elif f.number == 2:
                    payload_start = f.start
                    payload_end = f.end
                elif f.number == 4:
                    publisher_parts = _merge(&publisher, &f, publisher_parts, p)
                elif f.number == 5:
                    correlation_parts = _merge(&correlation, &f, correlation_parts, p)
                elif f.number == 6:
                    view.reply_to = _text(p, &f, size, what, "reply_to")
            elif f.wire == 1 and f.number == 3:
                view.timestamp_ns = f.value
    view.payload = _slice(p, payload_start, payload_end)
    view._publisher_raw = _merged(&publisher, publisher_parts, p) if publisher.count else b""
    if correlation.count:
        view._correlation_raw = _merged(&correlation, correlation_parts, p)
    return view
