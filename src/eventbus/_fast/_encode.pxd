# The encoders other compiled modules call without a Python call (see _encode.pyx).

from libc.stdint cimport uint64_t


# encode_publish's body; ``max_frame`` -1 means no limit.
cdef bytes publish_frame(
    str topic,
    object payload,
    uint64_t request_id,
    object correlation,
    str reply_to,
    uint64_t sequence,
    uint64_t stream_started_ns,
    Py_ssize_t max_frame,
)
