"""The broker's path for a Publish that needs no decision, pure-Python reference of
``_fast/_publish.pyx``.

:func:`route_publish` takes a decoded Publish from a connection through the publish check,
the encoding of its event and the fan-out in one call, when nothing about it needs more than
that: it is no request (no ``reply_to``) and the connection's cached rights allow its topic,
which is no broker (``$``) topic. Anything else — a denial, an invalid topic, a request, an
inbox reply — is left to the broker's Python handler, which decides what to answer
(``None``).
"""

from __future__ import annotations

import time

from ._encode import encode_event
from ._outbox import Outbox, fan_out
from ._rights import RightsTable
from ._trie import TopicTrie
from ._wire import PublishView
from .errors import InvalidTopic

__all__ = ["route_publish"]


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
