# cython: language_level=3, annotation_typing=False
"""The hot frames written to the wire, compiled twin of ``eventbus._encode``.

Each encoder sizes the frame first, then writes it into one ``bytes`` object.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy

from eventbus.errors import FrameTooLarge

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL

__all__ = ["encode_event", "encode_pub_ack", "encode_publish"]


# --- encoding -------------------------------------------------------------------------------

# A bytes-like argument, read in place.
ctypedef struct Chunk:
    const unsigned char* data
    Py_ssize_t size
    Py_buffer view
    bint held


cdef inline int _open(object obj, Chunk* c) except -1:
    c.held = False
    if type(obj) is bytes:
        c.data = <const unsigned char*>PyBytes_AS_STRING(obj)
        c.size = PyBytes_GET_SIZE(obj)
    else:
        PyObject_GetBuffer(obj, &c.view, PyBUF_SIMPLE)
        c.held = True
        c.data = <const unsigned char*>c.view.buf
        c.size = c.view.len
    return 0


cdef inline void _close(Chunk* c) noexcept:
    if c.held:
        PyBuffer_Release(&c.view)
        c.held = False


cdef inline Py_ssize_t _varint_size(uint64_t value) noexcept:
    cdef Py_ssize_t n = 1
    while value >= 0x80:
        value >>= 7
        n += 1
    return n


cdef inline Py_ssize_t _field_size(Py_ssize_t length) noexcept:
    """Bytes of a length-delimited field with a one-byte tag."""
    return 1 + _varint_size(<uint64_t>length) + length


cdef inline unsigned char* _put_varint(unsigned char* out, uint64_t value) noexcept:
    while value >= 0x80:
        out[0] = <unsigned char>((value & 0x7F) | 0x80)
        out += 1
        value >>= 7
    out[0] = <unsigned char>value
    return out + 1


cdef inline unsigned char* _put_fixed64(
    unsigned char* out, unsigned char tag, uint64_t value
) noexcept:
    cdef int k
    out[0] = tag
    for k in range(8):
        out[1 + k] = <unsigned char>((value >> (8 * k)) & 0xFF)
    return out + 9


cdef inline unsigned char* _put_field(
    unsigned char* out, unsigned char tag, const void* data, Py_ssize_t length
) noexcept:
    out[0] = tag
    out = _put_varint(out + 1, <uint64_t>length)
    memcpy(out, data, length)
    return out + length


cdef inline bytes _new_frame(unsigned char tag, Py_ssize_t body):
    """The frame of a ``body``-byte message in Frame field ``tag``, with its length prefix
    and head written; the message goes after them (see ``_message_at``)."""
    cdef Py_ssize_t size = 1 + _varint_size(<uint64_t>body) + body
    cdef bytes frame = PyBytes_FromStringAndSize(NULL, 4 + size)
    cdef unsigned char* out = <unsigned char*>PyBytes_AS_STRING(frame)
    cdef int k
    for k in range(4):
        out[k] = <unsigned char>((<uint64_t>size >> (8 * k)) & 0xFF)
    out[4] = tag
    _put_varint(out + 5, <uint64_t>body)
    return frame


cdef inline unsigned char* _message_at(bytes frame, Py_ssize_t body) noexcept:
    return <unsigned char*>PyBytes_AS_STRING(frame) + 5 + _varint_size(<uint64_t>body)


def encode_event(
    str topic,
    payload,
    uint64_t timestamp_ns,
    publisher,
    correlation=b"",
    str reply_to="",
    uint64_t sequence=0,
    uint64_t stream_started_ns=0,
):
    """A length-prefixed ``Frame{event: EventEnvelope}``, byte-compatible with protobuf's."""
    cdef Py_ssize_t topic_n
    cdef Py_ssize_t reply_n = 0
    cdef const char* topic_p = PyUnicode_AsUTF8AndSize(topic, &topic_n)
    cdef const char* reply_p = NULL
    cdef Chunk body_c, pub_c, corr_c
    cdef Py_ssize_t numbered = 1 + _varint_size(sequence) if sequence else 0
    cdef bint started = sequence != 0 and stream_started_ns != 0
    cdef Py_ssize_t body
    cdef bytes frame
    cdef unsigned char* out
    cdef int k
    if started:
        numbered += 9
    if reply_to:
        reply_p = PyUnicode_AsUTF8AndSize(reply_to, &reply_n)
    body_c.held = pub_c.held = corr_c.held = False
    try:
        _open(payload, &body_c)
        _open(publisher, &pub_c)
        _open(correlation, &corr_c)
        body = (
            _field_size(topic_n) + _field_size(body_c.size) + 9
            + _field_size(pub_c.size + numbered)
        )
        if corr_c.size:
            body += _field_size(corr_c.size)
        if reply_n:
            body += _field_size(reply_n)
        frame = _new_frame(0x4A, body)
        out = _message_at(frame, body)
        out = _put_field(out, 0x0A, topic_p, topic_n)
        out = _put_field(out, 0x12, body_c.data, body_c.size)
        out[0] = 0x19
        for k in range(8):
            out[1 + k] = <unsigned char>((timestamp_ns >> (8 * k)) & 0xFF)
        out[9] = 0x22
        out = _put_varint(out + 10, <uint64_t>(pub_c.size + numbered))
        memcpy(out, pub_c.data, pub_c.size)
        out += pub_c.size
        if sequence:
            out[0] = 0x40
            out = _put_varint(out + 1, sequence)
        if started:
            out = _put_fixed64(out, 0x49, stream_started_ns)
        if corr_c.size:
            out = _put_field(out, 0x2A, corr_c.data, corr_c.size)
        if reply_n:
            _put_field(out, 0x32, reply_p, reply_n)
    finally:
        _close(&body_c)
        _close(&pub_c)
        _close(&corr_c)
    return frame


def encode_publish(
    str topic,
    payload,
    uint64_t request_id=0,
    correlation=b"",
    str reply_to="",
    *,
    uint64_t sequence=0,
    uint64_t stream_started_ns=0,
    max_frame=None,
):
    """A length-prefixed ``Frame{publish: Publish}``, byte-compatible with protobuf's."""
    return publish_frame(
        topic,
        payload,
        request_id,
        correlation,
        reply_to,
        sequence,
        stream_started_ns,
        -1 if max_frame is None else <Py_ssize_t>max_frame,
    )


cdef bytes publish_frame(
    str topic,
    object payload,
    uint64_t request_id,
    object correlation,
    str reply_to,
    uint64_t sequence,
    uint64_t stream_started_ns,
    Py_ssize_t max_frame,
):
    cdef Py_ssize_t topic_n
    cdef Py_ssize_t reply_n = 0
    cdef const char* topic_p = PyUnicode_AsUTF8AndSize(topic, &topic_n)
    cdef const char* reply_p = NULL
    cdef Chunk body_c, corr_c
    cdef Py_ssize_t body
    cdef Py_ssize_t size
    cdef bytes frame
    cdef unsigned char* out
    if reply_to:
        reply_p = PyUnicode_AsUTF8AndSize(reply_to, &reply_n)
    body_c.held = corr_c.held = False
    try:
        _open(payload, &body_c)
        _open(correlation, &corr_c)
        body = _field_size(topic_n) + _field_size(body_c.size)
        if request_id:
            body += 1 + _varint_size(request_id)
        if corr_c.size:
            body += _field_size(corr_c.size)
        if reply_n:
            body += _field_size(reply_n)
        if sequence:
            body += 1 + _varint_size(sequence)
        if stream_started_ns:
            body += 9
        size = 1 + _varint_size(<uint64_t>body) + body
        if max_frame >= 0 and size > max_frame:
            raise FrameTooLarge(
                f"publish frame of {size} bytes exceeds the maximum of {max_frame} bytes"
            )
        frame = _new_frame(0x3A, body)
        out = _message_at(frame, body)
        out = _put_field(out, 0x12, topic_p, topic_n)
        out = _put_field(out, 0x1A, body_c.data, body_c.size)
        if request_id:
            out[0] = 0x08
            out = _put_varint(out + 1, request_id)
        if corr_c.size:
            out = _put_field(out, 0x22, corr_c.data, corr_c.size)
        if reply_n:
            out = _put_field(out, 0x2A, reply_p, reply_n)
        if sequence:
            out[0] = 0x30
            out = _put_varint(out + 1, sequence)
        if stream_started_ns:
            _put_fixed64(out, 0x39, stream_started_ns)
    finally:
        _close(&body_c)
        _close(&corr_c)
    return frame


def encode_pub_ack(request_id, delivered, dropped):
    """A length-prefixed ``Frame{pub_ack: PubAck}`` (see the twin)."""
    if not 0 <= delivered <= 0xFFFFFFFF or not 0 <= dropped <= 0xFFFFFFFF:
        raise ValueError(f"PubAck counts must be uint32, not {delivered} and {dropped}")
    cdef uint64_t rid = request_id
    cdef uint32_t d = delivered
    cdef uint32_t x = dropped
    cdef Py_ssize_t body = 0
    if rid:
        body += 1 + _varint_size(rid)
    if d:
        body += 1 + _varint_size(d)
    if x:
        body += 1 + _varint_size(x)
    cdef bytes frame = _new_frame(0x42, body)
    cdef unsigned char* out = _message_at(frame, body)
    if rid:
        out[0] = 0x08
        out = _put_varint(out + 1, rid)
    if d:
        out[0] = 0x10
        out = _put_varint(out + 1, d)
    if x:
        out[0] = 0x18
        out = _put_varint(out + 1, x)
    return frame
