"""The broker's path for a Publish that needs no decision, pure-Python reference of
``_fast/_publish.pyx``.

:func:`route_publish` takes a decoded Publish from a connection through the publish check,
the encoding of its event and the fan-out in one call, when nothing about it needs more than
that: it is no request (no ``reply_to``) and the connection's cached rights allow its topic,
which is no broker (``$``) topic. Anything else — a denial, an invalid topic, a request, an
inbox reply — is left to the broker's Python handler, which decides what to answer
(``None``).

:func:`serve_frames` is the broker's read pass: every frame body one chunk brought from a
connection, served in order. The compiled twin reads each Publish from the bytes and routes
it without leaving C; here every frame goes to the broker's ``dispatch``, because on the
pure-Python core protobuf's parser reads a Publish faster than Python code could, and the
broker's publish handler then takes the same :func:`route_publish`. Either way each frame
gets the same answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._encode import encode_event
from ._outbox import Outbox, fan_out
from ._rights import RightsTable
from ._trie import TopicTrie
from ._wire import PublishView
from .errors import InvalidTopic

__all__ = ["Decide", "Dispatch", "route_publish", "serve_frames"]


def route_publish(
    session: Outbox, rights: RightsTable, trie: TopicTrie, publish: PublishView
) -> tuple[int, int] | None:
    """Deliver ``publish`` from ``session`` (whose publish rights are ``rights``) to the
    connections ``trie`` holds for its topic; ``(delivered, dropped)``, or None when the
    broker's handler must decide (see the module)."""
    topic = publish.topic
    if publish.reply_to or topic[:1] == "$":
        return None
    try:
        if not rights.may_publish(topic):
            return None
    except InvalidTopic:
        return None
    sequence = publish.sequence
    instance_id = session.instance_id
    data = encode_event(
        topic,
        publish.payload,
        time.time_ns(),
        session.publisher_field,
        publish.correlation,
        "",
        sequence,
        publish.stream_started_ns,
    )
    plain, groups = trie.match_split(topic)
    stream = (instance_id, topic) if sequence and instance_id else None
    return fan_out(plain, groups, data, "", stream)  # type: ignore[arg-type]


Dispatch = Callable[[Any, bytes], None]
"""Serves one frame body from a connection (the broker's per-frame handler)."""
Decide = Callable[[Any, PublishView], None]
"""Serves a Publish :func:`route_publish` left to the broker."""


def serve_frames(
    session: Outbox,
    bodies: list[bytes],
    rights: RightsTable,
    trie: TopicTrie,
    dispatch: Dispatch,
    decide: Decide,
    totals: Any,
) -> None:
    """Serve the frame bodies of one read pass from ``session``, in order.

    A Publish that :func:`route_publish` routes counts once in ``session.messages_in``,
    in ``totals.messages_in`` and, for what it reached, in ``totals.messages_out`` and
    ``totals.messages_dropped``; a request id is answered with a PubAck through
    ``session.send``. A Publish it leaves goes to ``decide(session, view)``, and any other
    frame to ``dispatch(session, body)``, which count what they serve. What a callback raises
    ends the pass, with everything served before it counted. This twin hands every frame to
    ``dispatch`` (see the module).
    """
    for body in bodies:
        dispatch(session, body)
