# The layouts of the views the decoders hand out; the raw bytes of the embedded messages
# are kept so that they are parsed only if they are read.

from libc.stdint cimport uint32_t, uint64_t


cdef class PubAckView:
    cdef readonly uint64_t request_id
    cdef readonly uint32_t delivered
    cdef readonly uint32_t dropped


cdef class PublishView:
    cdef readonly uint64_t request_id
    cdef readonly str topic
    cdef readonly bytes payload
    cdef readonly bytes correlation
    cdef readonly str reply_to
    cdef readonly uint64_t sequence
    cdef readonly uint64_t stream_started_ns


cdef class EventView:
    cdef readonly str topic
    cdef readonly bytes payload
    cdef readonly uint64_t timestamp_ns
    cdef readonly str reply_to
    cdef bytes _publisher_raw
    cdef object _correlation_raw    # bytes, or None when the envelope has no correlation
    cdef object _publisher
    cdef object _correlation
    cdef bint _correlation_read
    cdef bint _ids_read
    cdef uint64_t _instance_id
    cdef uint64_t _sequence

    cdef int _read_ids(self) except -1


# For the compiled read passes (_publish.serve_frames, _delivery.Delivery): a frame body's
# kind, its Publish, and its EventEnvelope as an instance of ``cls`` (EventView or a subclass).
cdef int read_kind(bytes data) except -1
cdef PublishView read_publish(bytes data)
cdef EventView read_event(bytes data, type cls)
