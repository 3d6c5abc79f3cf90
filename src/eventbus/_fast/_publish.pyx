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
from ._wire cimport PublishView, read_kind, read_publish

from eventbus._fast._encode import encode_event, encode_pub_ack
from eventbus._fast._outbox import fan_out
from eventbus.errors import InvalidTopic

cdef extern from "<time.h>" nogil:
    ctypedef int clockid_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(clockid_t clk_id, timespec* tp)
    clockid_t CLOCK_REALTIME

__all__ = ["route_publish", "serve_frames"]

cdef enum:
    C_PUBLISH = 1        # the publish bit of a rights mask
    C_KIND_PUBLISH = 7   # the Frame field of a Publish


cdef inline uint64_t _now_ns() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <uint64_t>ts.tv_sec * 1000000000ULL + <uint64_t>ts.tv_nsec


cdef int _route(
    Outbox session, RightsTable rights, TopicTrie trie, PublishView publish, Py_ssize_t* counts
) except -1:
    """1 with ``counts`` set to (delivered, dropped) when routed, 0 when left to the handler."""
    cdef str topic = publish.topic
    cdef unsigned int mask
    cdef tuple entry
    if publish.reply_to or (len(topic) and topic[0] == "$"):
        return 0
    try:
        mask = rights._mask(topic)
    except InvalidTopic:
        return 0
    if not mask & C_PUBLISH:
        return 0
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
    delivered, dropped = fan_out(
        <object>PyTuple_GET_ITEM(entry, 0), <object>PyTuple_GET_ITEM(entry, 1), data, "", stream
    )
    counts[0] = delivered
    counts[1] = dropped
    return 1


def route_publish(Outbox session, RightsTable rights, TopicTrie trie, PublishView publish):
    """Deliver ``publish`` from ``session`` to the connections ``trie`` holds for its
    topic; ``(delivered, dropped)``, or None when the broker's handler must decide."""
    cdef Py_ssize_t counts[2]
    if not _route(session, rights, trie, publish, counts):
        return None
    return counts[0], counts[1]


def serve_frames(
    Outbox session, list bodies, RightsTable rights, TopicTrie trie, dispatch, decide, totals
):
    """Serve the frame bodies of one read pass from ``session`` (see the twin): each
    Publish is read and routed here, one :func:`route_publish` leaves goes to
    ``decide(session, view)``, any other frame to ``dispatch(session, body)``."""
    cdef Py_ssize_t served = 0
    cdef Py_ssize_t routed = 0
    cdef Py_ssize_t delivered = 0
    cdef Py_ssize_t dropped = 0
    cdef Py_ssize_t counts[2]
    cdef PublishView view
    cdef bytes data
    try:
        for body in bodies:
            data = <bytes?>body
            if read_kind(data) != C_KIND_PUBLISH:
                dispatch(session, data)
                continue
            view = read_publish(data)
            served += 1
            if not _route(session, rights, trie, view, counts):
                decide(session, view)
                continue
            routed += 1
            delivered += counts[0]
            dropped += counts[1]
            if view.request_id:
                (<object>session).send(encode_pub_ack(view.request_id, counts[0], counts[1]))
    finally:
        if served:
            (<object>session).messages_in += served
        if routed:
            totals.messages_in += routed
            totals.messages_out += delivered
            totals.messages_dropped += dropped
