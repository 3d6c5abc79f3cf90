"""One delivered event, as the broker stamped it."""

from __future__ import annotations

from google.protobuf.message import Message

from .. import topics
from ..v1 import frames_pb2

__all__ = ["Envelope"]


class Envelope:
    """One delivered event, as the broker stamped it."""

    __slots__ = ("_raw",)

    def __init__(self, raw: frames_pb2.EventEnvelope) -> None:
        self._raw = raw

    @property
    def topic(self) -> str:
        return self._raw.topic

    @property
    def payload(self) -> bytes:
        return self._raw.payload

    @property
    def timestamp_ns(self) -> int:
        """When the broker accepted the event (wall clock, ns since the epoch)."""
        return self._raw.timestamp_ns

    @property
    def publisher(self) -> frames_pb2.ProcessIdentity:
        """Who published it, as the broker verified it: pid, uid, principal, connection id."""
        return self._raw.publisher

    @property
    def correlation(self) -> frames_pb2.CorrelationMetadata | None:
        return self._raw.correlation if self._raw.HasField("correlation") else None

    @property
    def reply_to(self) -> str:
        return self._raw.reply_to

    @property
    def raw(self) -> frames_pb2.EventEnvelope:
        return self._raw

    def decode(self) -> Message:
        """The payload as the protobuf message registered for this topic."""
        return topics.decode_payload(self._raw.topic, self._raw.payload)

    def __repr__(self) -> str:
        who = self._raw.publisher
        return (
            f"Envelope(topic={self.topic!r}, {len(self.payload)} bytes, "
            f"from {who.principal or '?'} pid={who.pid})"
        )
