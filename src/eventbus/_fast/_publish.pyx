# cython: language_level=3, annotation_typing=False
"""The broker's path for a Publish that needs no decision, compiled twin of
``eventbus._publish`` (the rules are documented there).

The rights mask and the match come from the compiled tables' caches by C calls, the
delivery to each connection is ``Outbox._deliver``; the event is encoded once.
"""

from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport uint64_t
from libc.time cimport time_t

from ._outbox cimport Outbox
from ._rights cimport RightsTable
from ._trie cimport TopicTrie
from ._wire cimport PublishView

from eventbus._fast._encode import encode_event
from eventbus._fast._outbox import fan_out
from eventbus.errors import InvalidTopic

cdef extern from "<time.h>" nogil:
    ctypedef int clockid_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(clockid_t clk_id, timespec* tp)
    clockid_t CLOCK_REALTIME

__all__ = ["route_publish"]

cdef enum:
    C_PUBLISH = 1


cdef inline uint64_t _now_ns() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <uint64_t>ts.tv_sec * 1000000000ULL + <uint64_t>ts.tv_nsec


def route_publish(Outbox session, RightsTable rights, TopicTrie trie, PublishView publish):
    """Deliver ``publish`` from ``session`` to the connections ``trie`` holds for its
    topic; ``(delivered, dropped)``, or None when the broker's handler must decide."""
    cdef str topic = publish.topic
    cdef unsigned int mask
    cdef tuple entry
    if publish.reply_to or (len(topic) and topic[0] == "$"):
        return None
    try:
        mask = rights._mask(topic)
    except InvalidTopic:
        return None
    if not mask & C_PUBLISH:
        return None
    cdef uint64_t sequence = publish.sequence
    data = encode_event(
        topic,
        publish.payload,
        _now_ns(),
        session.publisher_field,
        publish.correlation,
        "",
        sequence,
        publish.stream_started_ns,
    )
    entry = trie._lookup(topic)
    stream = (session.instance_id, topic) if sequence and session.instance_id else None
    return fan_out(
        <object>PyTuple_GET_ITEM(entry, 0), <object>PyTuple_GET_ITEM(entry, 1), data, "", stream
    )
