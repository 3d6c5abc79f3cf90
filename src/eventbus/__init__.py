"""daemoneye-eventbus: a local cross-process publish/subscribe bus.

MQTT-style topics, one broker process, Unix domain sockets or Windows named pipes, and
access control bound to OS-verified process identity.
"""

from __future__ import annotations

from ._backend import (
    BACKEND,
    TopicTrie,
    filter_covers,
    topic_matches,
    validate_filter,
    validate_topic,
)
from .errors import (
    AddressInUse,
    ConnectionLost,
    EventBusError,
    FrameTooLarge,
    InvalidTopic,
    NoResponders,
    PermissionDenied,
    PolicyError,
    ProtocolError,
    Timeout,
)

__version__ = "0.1.0"

__all__ = [
    "BACKEND",
    "AddressInUse",
    "ConnectionLost",
    "EventBusError",
    "FrameTooLarge",
    "InvalidTopic",
    "NoResponders",
    "PermissionDenied",
    "PolicyError",
    "ProtocolError",
    "Timeout",
    "TopicTrie",
    "__version__",
    "filter_covers",
    "topic_matches",
    "validate_filter",
    "validate_topic",
]
