# cython: language_level=3, annotation_typing=False
"""Frame splitting, compiled twin of ``eventbus._framing``.

Headers are read straight from the bytes, and each complete body is copied once, into the
``bytes`` object handed out; a frame cut between two chunks too, from both parts. Only the
bytes that do not make a frame yet are kept, in a ``bytearray``; unlike the twin, a chunk is
not appended to the waiting bytes before it is read.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.stdint cimport uint32_t
from libc.string cimport memcpy

# One definition of the default for both twins: the reference's.
from eventbus._framing import DEFAULT_MAX_FRAME
from eventbus.errors import FrameTooLarge

__all__ = ["DEFAULT_MAX_FRAME", "FrameSplitter"]

cdef enum:
    HEADER = 4


cdef inline uint32_t _length(const unsigned char* p) noexcept:
    """The little-endian unsigned 32-bit length at ``p``."""
    return (
        <uint32_t>p[0]
        | (<uint32_t>p[1] << 8)
        | (<uint32_t>p[2] << 16)
        | (<uint32_t>p[3] << 24)
    )


# The bytes waiting in the buffer and the chunk being fed, read as one stream without
# joining them: offsets below ``held`` are in the buffer, the others in the chunk.
ctypedef struct Stream:
    const unsigned char* held_data
    Py_ssize_t held
    const unsigned char* fed_data
    Py_ssize_t fed


cdef inline uint32_t _header_at(Stream* s, Py_ssize_t pos) noexcept:
    cdef unsigned char header[HEADER]
    cdef Py_ssize_t k
    if pos + HEADER <= s.held:
        return _length(s.held_data + pos)
    if pos >= s.held:
        return _length(s.fed_data + (pos - s.held))
    for k in range(HEADER):
        header[k] = s.held_data[pos + k] if pos + k < s.held else s.fed_data[pos + k - s.held]
    return _length(header)


cdef bytes _body_at(Stream* s, Py_ssize_t pos, Py_ssize_t length):
    """The ``length`` bytes at ``pos``, copied once, into the bytes returned."""
    cdef bytes body
    cdef Py_ssize_t first
    if pos + length <= s.held:
        return PyBytes_FromStringAndSize(<char*>s.held_data + pos, length)
    if pos >= s.held:
        return PyBytes_FromStringAndSize(<char*>s.fed_data + (pos - s.held), length)
    first = s.held - pos
    body = PyBytes_FromStringAndSize(NULL, length)
    memcpy(PyBytes_AS_STRING(body), s.held_data + pos, first)
    memcpy(PyBytes_AS_STRING(body) + first, s.fed_data, length - first)
    return body


cdef inline int _check(uint32_t length, long long bound, object limit, bint limit_is_c) except -1:
    cdef bint too_large
    if limit_is_c:
        too_large = length > bound
    else:
        too_large = length > limit
    if too_large:
        raise FrameTooLarge(f"frame of {length} bytes declared, over the limit of {limit} bytes")
    return 0


cdef Py_ssize_t _split_run(
    const unsigned char* data,
    Py_ssize_t size,
    Py_ssize_t pos,
    long long bound,
    object limit,
    bint limit_is_c,
    list frames,
) except -1:
    """Append the bodies of the whole frames in ``data[pos:]``; return where they end."""
    cdef uint32_t length
    cdef Py_ssize_t end
    while size - pos >= HEADER:
        length = _length(data + pos)
        _check(length, bound, limit, limit_is_c)
        end = pos + HEADER + <Py_ssize_t>length
        if end > size:
            break
        frames.append(PyBytes_FromStringAndSize(<char*>data + pos + HEADER, length))
        pos = end
    return pos


cdef class FrameSplitter:
    """Accumulates stream bytes and yields complete frame bodies."""

    def __cinit__(self, *args, **kwargs):
        self._buffer = bytearray()
        self._max_frame = DEFAULT_MAX_FRAME

    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        self._max_frame = max_frame

    @property
    def max_frame(self):
        return self._max_frame

    @property
    def buffered(self):
        """Bytes received that do not yet make a whole frame (non-zero at EOF: a cut frame)."""
        return PyByteArray_GET_SIZE(self._buffer)

    def feed(self, data):
        """Add ``data``; return the bodies of the frames it completes, in order.

        Raises :class:`FrameTooLarge` when a header declares more than ``max_frame`` bytes;
        its ``frames`` are the bodies completed before that header.
        """
        cdef bytearray buffer = self._buffer
        cdef object source
        cdef Py_buffer held_view
        cdef Py_buffer fed_view
        cdef bint held_exported = False
        cdef bint fed_exported = False
        cdef Stream stream
        cdef Py_ssize_t total
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t end
        cdef Py_ssize_t tail
        cdef Py_ssize_t kept
        cdef uint32_t length
        cdef object limit = self._max_frame
        cdef long long bound = 0
        cdef int overflow = 0
        cdef bint limit_is_c = type(limit) is int
        cdef list frames = []
        if not isinstance(data, (bytes, bytearray)):
            # Any buffer counts as its bytes (a memoryview's len() counts items, and its
            # items may be wider); anything else fails here, whatever its length.
            source = memoryview(data)
            data = source.cast("B") if source.c_contiguous else source.tobytes()
        if limit_is_c:
            bound = PyLong_AsLongLongAndOverflow(limit, &overflow)
            if overflow > 0:
                bound = 0xFFFFFFFF    # no declared length is over it
            elif overflow < 0:
                bound = -1            # every declared length is over it
        # Both stay exported while their bytes are read, so nothing can resize them.
        stream.held_data = NULL
        stream.held = PyByteArray_GET_SIZE(buffer)
        if stream.held:
            PyObject_GetBuffer(buffer, &held_view, PyBUF_SIMPLE)
            held_exported = True
            stream.held_data = <const unsigned char*>held_view.buf
        if type(data) is bytes:
            stream.fed_data = <const unsigned char*>PyBytes_AS_STRING(data)
            stream.fed = PyBytes_GET_SIZE(data)
        else:
            PyObject_GetBuffer(data, &fed_view, PyBUF_SIMPLE)
            fed_exported = True
            stream.fed_data = <const unsigned char*>fed_view.buf
            stream.fed = fed_view.len
        total = stream.held + stream.fed
        try:
            while total - pos >= HEADER:
                if pos >= stream.held:
                    # From here on every frame starts in the chunk: read it directly.
                    pos = _split_run(
                        stream.fed_data, stream.fed, pos - stream.held, bound, limit,
                        limit_is_c, frames,
                    ) + stream.held
                    break
                length = _header_at(&stream, pos)
                _check(length, bound, limit, limit_is_c)
                end = pos + HEADER + <Py_ssize_t>length
                if end > total:
                    break
                frames.append(_body_at(&stream, pos + HEADER, length))
                pos = end
        except FrameTooLarge as error:
            error.frames = frames  # the frames before the oversized header, as the twin's
            if held_exported:
                PyBuffer_Release(&held_view)
            if fed_exported:
                PyBuffer_Release(&fed_view)
            if stream.held:
                buffer += data
            raise
        except BaseException:
            # As the twin, which appends the chunk to waiting bytes before it reads them.
            if held_exported:
                PyBuffer_Release(&held_view)
            if fed_exported:
                PyBuffer_Release(&fed_view)
            if stream.held:
                buffer += data
            raise
        if held_exported:
            PyBuffer_Release(&held_view)
        try:
            # Keep what does not make a frame yet: the buffer from ``pos`` on, then the chunk
            # (a cut frame that began before it), or only the chunk's tail.
            if pos >= stream.held:
                tail = total - pos
                if stream.held or tail:
                    PyByteArray_Resize(buffer, tail)
                    memcpy(
                        PyByteArray_AS_STRING(buffer),
                        stream.fed_data + (pos - stream.held),
                        tail,
                    )
            else:
                if pos:
                    del buffer[:pos]
                if stream.fed:
                    kept = PyByteArray_GET_SIZE(buffer)
                    PyByteArray_Resize(buffer, kept + stream.fed)
                    memcpy(PyByteArray_AS_STRING(buffer) + kept, stream.fed_data, stream.fed)
        finally:
            if fed_exported:
                PyBuffer_Release(&fed_view)
        return frames
