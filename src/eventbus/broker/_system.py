"""The broker as a publisher of its own ``$SYS`` events: its identity, numbered like any
client's publishes so subscribers can see a gap in them too."""

from __future__ import annotations

import os
import random
import time

from ..protocol import encode_event, encode_publisher
from ..v1 import frames_pb2
from ._session import Session

__all__ = ["SystemPublisher", "presence"]


class SystemPublisher:
    """Encodes ``$SYS`` events with the broker's identity and a sequence per topic."""

    __slots__ = ("_publisher_field", "_sequences", "identity")

    def __init__(self, name: str) -> None:
        self.identity = frames_pb2.ProcessIdentity(
            pid=os.getpid(),
            uid=os.getuid() if hasattr(os, "getuid") else 0,
            gid=os.getgid() if hasattr(os, "getgid") else 0,
            principal="$broker",
            client_name=name,
            instance_id=random.getrandbits(64) or 1,
        )
        self._publisher_field = encode_publisher(self.identity)
        self._sequences: dict[str, int] = {}

    def encode(self, topic: str, payload: bytes) -> tuple[bytes, tuple[int, str]]:
        """The event's frame and its stream (for drop reports)."""
        sequence = self._sequences.get(topic, 0) + 1
        self._sequences[topic] = sequence
        data = encode_event(
            topic, payload, time.time_ns(), self._publisher_field, sequence=sequence
        )
        return data, (self.identity.instance_id, topic)


def presence(
    session: Session, reason: str, subscriptions: list[frames_pb2.SubscriptionInfo] | None = None
) -> bytes:
    """The payload of ``$SYS.client.connected`` / ``disconnected`` for ``session``."""
    return frames_pb2.ClientPresence(
        identity=session.identity,
        reason=reason,
        subscriptions=subscriptions or (),
        dropped=session.dropped_total,
    ).SerializeToString()
