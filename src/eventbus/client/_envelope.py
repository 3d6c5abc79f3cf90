"""One delivered event, as the broker stamped it."""

from __future__ import annotations

from google.protobuf.message import Message

from .. import topics
from .._backend import EventView
from ..v1 import frames_pb2

__all__ = ["Envelope"]


class Envelope(EventView):
    """One delivered event, as the broker stamped it.

    ``topic``, ``payload``, ``timestamp_ns`` (when the broker accepted the event: wall clock,
    ns since the epoch) and ``reply_to`` are read from the frame at once; ``publisher`` (who
    published it, as the broker verified it: pid, uid, principal, connection id, and the
    client instance and sequence that number it) and ``correlation`` (None when absent)
    only when first asked for.
    """

    __slots__ = ()

    @property
    def raw(self) -> frames_pb2.EventEnvelope:
        """The event as the generated message (built on each call)."""
        return frames_pb2.EventEnvelope(
            topic=self.topic,
            payload=self.payload,
            timestamp_ns=self.timestamp_ns,
            publisher=self.publisher,
            correlation=self.correlation,
            reply_to=self.reply_to,
        )

    def decode(self) -> Message:
        """The payload as the protobuf message registered for this topic."""
        return topics.decode_payload(self.topic, self.payload)

    def __repr__(self) -> str:
        who = self.publisher
        return (
            f"Envelope(topic={self.topic!r}, {len(self.payload)} bytes, "
            f"from {who.principal or '?'} pid={who.pid})"
        )
