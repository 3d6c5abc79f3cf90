"""The typed errors of eventbus: everything a user can cause raises one of these."""

from __future__ import annotations

__all__ = [
    "AddressInUse",
    "ConfigError",
    "ConnectionLost",
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
    "Timeout",
]


class EventBusError(Exception):
    """Base class of every error raised by eventbus."""


class InvalidTopic(EventBusError, ValueError):
    """A topic name or filter breaks the grammar (the message names the input and the rule)."""


class PermissionDenied(EventBusError):
    """The access-control policy forbids the operation (the message names the rule set)."""


class QuotaExceeded(EventBusError):
    """A per-uid or per-connection quota (connections, subscriptions) would be passed."""


class NoResponders(EventBusError):
    """A request was sent to a topic that nobody subscribes to."""


class Timeout(EventBusError, TimeoutError):
    """An answer did not arrive within its deadline."""


class ConnectionLost(EventBusError, ConnectionError):
    """The connection to the broker (or to a client) closed."""


class Kicked(ConnectionLost):
    """An admin disconnected this client (the message names who and why).

    The client does not reconnect by itself after it: the admin meant it to go.
    """


class ProtocolError(EventBusError):
    """A peer sent bytes that are not a valid frame, or a frame out of place."""


class FrameTooLarge(ProtocolError):
    """A frame's declared length exceeds the configured maximum.

    Raised by a frame splitter, ``frames`` holds the bodies of the whole frames that came
    before the oversized header in the same bytes, so they can still be served.
    """

    # Replaced per instance by the splitter; the shared empty list is never mutated.
    frames: list[bytes] = []


class PolicyError(EventBusError, ValueError):
    """An access-control policy file is invalid (the message names the line)."""


class ConfigError(EventBusError, ValueError):
    """A broker setting out of range (the message names the field and the value given)."""


class AddressInUse(EventBusError, OSError):
    """Another broker already answers on the address, or the path is not ours to take."""


class InvalidAddress(EventBusError, ValueError):
    """A socket path or pipe name that cannot be used (empty, too long, malformed)."""
