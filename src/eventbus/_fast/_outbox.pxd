# The layout of a connection's outbound side (see _outbox.pyx).

cdef class Outbox:
    cdef object _write              # transport.write
    cdef object _buffered           # transport.write_buffer_size
    cdef list _dirty
    cdef list _out
    cdef Py_ssize_t _out_bytes
    cdef public Py_ssize_t outbound_limit
    cdef public unsigned long long bytes_out
    cdef public unsigned long long messages_out
    cdef public unsigned long long dropped_pending
    cdef public unsigned long long dropped_total
    cdef public dict dropped_streams
    cdef public bint shedding
    cdef public bint closed
    cdef public unsigned long long instance_id
    cdef public bytes publisher_field

    cdef bint _deliver(self, bytes data, object stream) except -1
    cdef int _queue(self, bytes data) except -1
    cdef int _drop(self, object stream) except -1
