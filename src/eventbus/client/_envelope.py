"""One delivered event, as the broker stamped it."""

from __future__ import annotations

from google.protobuf.message import Message

from .. import topics
from .._backend import EventView
from ..v1 import frames_pb2

__all__ = ["Envelope"]


class Envelope:
    """One delivered event, as the broker stamped it.

    Topic and payload are read from the frame at once; the publisher and correlation
    metadata only when asked for.
    """

    __slots__ = ("_event",)

    def __init__(self, event: EventView) -> None:
        self._event = event

    @property
    def topic(self) -> str:
        return self._event.topic

    @property
    def payload(self) -> bytes:
        return self._event.payload

    @property
    def timestamp_ns(self) -> int:
        """When the broker accepted the event (wall clock, ns since the epoch)."""
        return self._event.timestamp_ns

    @property
    def publisher(self) -> frames_pb2.ProcessIdentity:
        """Who published it, as the broker verified it: pid, uid, principal, connection id,
        and the client instance and sequence that number it."""
        return self._event.publisher

    @property
    def correlation(self) -> frames_pb2.CorrelationMetadata | None:
        return self._event.correlation

    @property
    def reply_to(self) -> str:
        return self._event.reply_to

    @property
    def raw(self) -> frames_pb2.EventEnvelope:
        """The event as the generated message (built on each call)."""
        event = self._event
        return frames_pb2.EventEnvelope(
            topic=event.topic,
            payload=event.payload,
            timestamp_ns=event.timestamp_ns,
            publisher=event.publisher,
            correlation=event.correlation,
            reply_to=event.reply_to,
        )

    def decode(self) -> Message:
        """The payload as the protobuf message registered for this topic."""
        return topics.decode_payload(self._event.topic, self._event.payload)

    def __repr__(self) -> str:
        who = self._event.publisher
        return (
            f"Envelope(topic={self.topic!r}, {len(self.payload)} bytes, "
            f"from {who.principal or '?'} pid={who.pid})"
        )
