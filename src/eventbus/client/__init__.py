"""The async client of the bus: :func:`connect`, then publish, subscribe, request.

Its parts, each in its own module: the delivered :class:`Envelope`, the
:class:`Subscription` queue, the connection and its handshake (``_link``), gap detection
(``_sequences``) and the :class:`Client` itself with its reconnection.
"""

from ._client import NO_RECONNECT, Client, Reconnect, connect
from ._envelope import Envelope
from ._sequences import LostCallback
from ._subscription import Subscription

__all__ = [
    "NO_RECONNECT",
    "Client",
    "Envelope",
    "LostCallback",
    "Reconnect",
    "Subscription",
    "connect",
]
