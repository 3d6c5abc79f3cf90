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
from .broker import Broker, BrokerConfig
from .client import Client, Envelope, Subscription, connect
from .errors import (
    AddressInUse,
    ConfigError,
    ConnectionLost,
    EventBusError,
    FrameTooLarge,
    InvalidAddress,
    InvalidTopic,
    Kicked,
    NoResponders,
    PermissionDenied,
    PolicyError,
    ProtocolError,
    QuotaExceeded,
    Timeout,
)

__version__ = "0.1.0"

__all__ = [
    "BACKEND",
    "AddressInUse",
    "Broker",
    "BrokerConfig",
    "Client",
    "ConfigError",
    "ConnectionLost",
    "Envelope",
    "EventBusError",
    "FrameTooLarge",
    "InvalidAddress",
    "InvalidTopic",
    "Kicked",
    "NoResponders",
    "PermissionDenied",
    "PolicyError",
    "ProtocolError",
    "QuotaExceeded",
    "Subscription",
    "Timeout",
    "TopicTrie",
    "__version__",
    "connect",
    "filter_covers",
    "topic_matches",
    "validate_filter",
    "validate_topic",
]
