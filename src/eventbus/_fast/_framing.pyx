# cython: language_level=3, annotation_typing=False
"""Frame splitting, compiled twin of ``eventbus._framing``.

Headers are read straight from the bytes, and each complete body is copied once, into the
``bytes`` object handed out. Bytes that do not yet make a frame wait in a ``bytearray``
(whose front deletion only moves its start). While the loop reads a buffer, that buffer is
exported, so nothing can resize it underneath.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.stdint cimport uint32_t
from libc.string cimport memcpy

from eventbus.errors import FrameTooLarge

__all__ = ["DEFAULT_MAX_FRAME", "FrameSplitter"]

DEFAULT_MAX_FRAME = 1 << 20

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


cdef class FrameSplitter:
    """Accumulates stream bytes and yields complete frame bodies."""

    cdef bytearray _buffer
    cdef object _max_frame

    def __cinit__(self, *args, **kwargs):
        self._buffer = bytearray()
        self._max_frame = DEFAULT_MAX_FRAME

    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        self._buffer = bytearray()
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

        Raises :class:`FrameTooLarge` when a header declares more than ``max_frame`` bytes.
        """
        cdef bytearray buffer = self._buffer
        cdef bint appended
        cdef object source
        cdef Py_buffer view
        cdef bint exported = False
        cdef const unsigned char* base
        cdef Py_ssize_t size
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t end
        cdef uint32_t length
        cdef object limit = self._max_frame
        cdef long long bound = 0
        cdef int overflow = 0
        cdef bint limit_is_c = type(limit) is int
        cdef bint too_large
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
        appended = PyByteArray_GET_SIZE(buffer) != 0
        if appended:
            buffer += data
            source = buffer
        else:
            source = data
        if type(source) is bytes:
            base = <const unsigned char*>PyBytes_AS_STRING(source)
            size = PyBytes_GET_SIZE(source)
        else:
            PyObject_GetBuffer(source, &view, PyBUF_SIMPLE)
            exported = True
            base = <const unsigned char*>view.buf
            size = view.len
        try:
            while size - pos >= HEADER:
                length = _length(base + pos)
                if limit_is_c:
                    too_large = length > bound
                else:
                    too_large = length > limit
                if too_large:
                    raise FrameTooLarge(
                        f"frame of {length} bytes declared, over the limit of {limit} bytes"
                    )
                end = pos + HEADER + <Py_ssize_t>length
                if end > size:
                    break
                frames.append(
                    PyBytes_FromStringAndSize(<char*>base + pos + HEADER, length)
                )
                pos = end
            if not appended and pos < size:
                PyByteArray_Resize(buffer, size - pos)
                memcpy(PyByteArray_AS_STRING(buffer), base + pos, size - pos)
        finally:
            if exported:
                PyBuffer_Release(&view)
        if appended:
            del buffer[:pos]
        return frames
