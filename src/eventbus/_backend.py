"""Chooses the compiled core or its pure-Python twin, once, for the whole package.

``EVENTBUS_NO_EXTENSIONS`` set to a non-empty value other than ``"0"`` (``1``, ``yes``...)
forces the pure-Python core; unset, empty or ``"0"`` means use the compiled core when it is
importable. ``setup.py`` applies the same rule to decide whether to compile it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = [
    "ADMIN",
    "BACKEND",
    "FRAME_EVENT",
    "FRAME_PUBLISH",
    "FRAME_PUB_ACK",
    "PUBLISH",
    "SUBSCRIBE",
    "Delivery",
    "EventView",
    "FrameSplitter",
    "Mailbox",
    "Outbox",
    "PubAckView",
    "PublishView",
    "RightsTable",
    "Sender",
    "Sequences",
    "TopicTrie",
    "decode_event",
    "decode_pub_ack",
    "decode_publish",
    "encode_event",
    "encode_pub_ack",
    "encode_publish",
    "fan_out",
    "filter_covers",
    "filter_levels",
    "frame_kind",
    "route_publish",
    "serve_frames",
    "topic_levels",
    "topic_matches",
    "validate_filter",
    "validate_topic",
    "write_out",
]


def no_extensions_requested() -> bool:
    """Whether ``EVENTBUS_NO_EXTENSIONS`` asks for the pure-Python core.

    setup.py cannot import the package, so it repeats this rule word for word; change both
    together (a test holds the two copies equal).
    """
    return os.environ.get("EVENTBUS_NO_EXTENSIONS", "") not in ("", "0")


# The twinned modules; each exists as eventbus._<name> and eventbus._fast._<name>.
_TWINS = (
    "_delivery",
    "_encode",
    "_framing",
    "_grammar",
    "_outbox",
    "_publish",
    "_rights",
    "_sending",
    "_trie",
    "_wire",
)


def _import_twins(package: str) -> tuple[ModuleType, ...]:
    return tuple(importlib.import_module(f"{package}.{name}") for name in _TWINS)


NO_EXTENSIONS = no_extensions_requested()

if TYPE_CHECKING:
    # Both twins have the same API; type-check against the reference.
    from . import (
        _delivery,
        _encode,
        _framing,
        _grammar,
        _outbox,
        _publish,
        _rights,
        _sending,
        _trie,
        _wire,
    )
else:
    _core = None
    if not NO_EXTENSIONS:
        try:
            _core = _import_twins(f"{__package__}._fast")
        except ImportError:
            NO_EXTENSIONS = True
    (
        _delivery,
        _encode,
        _framing,
        _grammar,
        _outbox,
        _publish,
        _rights,
        _sending,
        _trie,
        _wire,
    ) = _core or _import_twins(__package__)

Delivery = _delivery.Delivery
Mailbox = _delivery.Mailbox
FrameSplitter = _framing.FrameSplitter
Outbox = _outbox.Outbox
fan_out = _outbox.fan_out
write_out = _outbox.write_out
route_publish = _publish.route_publish
serve_frames = _publish.serve_frames
filter_covers = _grammar.filter_covers
filter_levels = _grammar.filter_levels
topic_levels = _grammar.topic_levels
topic_matches = _grammar.topic_matches
validate_filter = _grammar.validate_filter
validate_topic = _grammar.validate_topic
ADMIN = _rights.ADMIN
PUBLISH = _rights.PUBLISH
SUBSCRIBE = _rights.SUBSCRIBE
RightsTable = _rights.RightsTable
Sender = _sending.Sender
Sequences = _sending.Sequences
TopicTrie = _trie.TopicTrie
FRAME_EVENT = _wire.FRAME_EVENT
FRAME_PUBLISH = _wire.FRAME_PUBLISH
FRAME_PUB_ACK = _wire.FRAME_PUB_ACK
EventView = _wire.EventView
PubAckView = _wire.PubAckView
PublishView = _wire.PublishView
decode_event = _wire.decode_event
decode_pub_ack = _wire.decode_pub_ack
decode_publish = _wire.decode_publish
encode_event = _encode.encode_event
encode_pub_ack = _encode.encode_pub_ack
encode_publish = _encode.encode_publish
frame_kind = _wire.frame_kind

BACKEND = "python" if NO_EXTENSIONS else "cython"
