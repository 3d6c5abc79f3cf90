"""The hot frames written to the wire, pure-Python reference of ``_fast/_encode.pyx``.

``Frame{event}`` and ``Frame{pub_ack}`` for the broker and ``Frame{publish}`` for the
client, byte-compatible with protobuf's serialization of the same messages, built without
creating any message object.
"""

from __future__ import annotations

import struct
from typing import Final

from .errors import FrameTooLarge

__all__ = ["encode_event", "encode_pub_ack", "encode_publish"]

_pack_length: Final = struct.Struct("<I").pack
_pack_fixed64: Final = struct.Struct("<Q").pack


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    if value < 0x80:
        return _SMALL_VARINTS[value]
    if value < 0x4000:  # body lengths and sequences mostly: two bytes without a loop
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS: Final = tuple(bytes((n,)) for n in range(0x80))
# Tags (field number << 3 | wire type) of Frame.event and the EventEnvelope fields.
_TAG_EVENT: Final = b"\x4a"
_TAG_TOPIC: Final = b"\x0a"
_TAG_PAYLOAD: Final = b"\x12"
_TAG_TIMESTAMP: Final = b"\x19"
_TAG_PUBLISHER: Final = b"\x22"
_TAG_CORRELATION: Final = b"\x2a"
_TAG_REPLY_TO: Final = b"\x32"
# ProcessIdentity.sequence (field 8, varint) and stream_started_ns (9, fixed64): the last
# fields, so they can follow the fixed part.
_TAG_SEQUENCE: Final = b"\x40"
_TAG_STREAM_STARTED: Final = b"\x49"


def encode_event(
    topic: str,
    payload: bytes,
    timestamp_ns: int,
    publisher: bytes,
    correlation: bytes = b"",
    reply_to: str = "",
    sequence: int = 0,
    stream_started_ns: int = 0,
) -> bytes:
    """A length-prefixed ``Frame{event: EventEnvelope}``, byte-compatible with protobuf's.

    The broker's hot path: the same bytes as building the messages and serializing them,
    without creating any message object. ``publisher`` is the serialized identity without
    its sequence (``protocol.encode_publisher``) and ``sequence`` (0: none) is appended to
    it as ``publisher.sequence``, followed by ``stream_started_ns`` when both are set;
    ``correlation`` is a serialized ``CorrelationMetadata``
    (empty when absent). Integers are in 0..2**64-1.
    """
    topic_bytes = topic.encode()
    if sequence:
        numbered = _TAG_SEQUENCE + _varint(sequence)
        if stream_started_ns:
            numbered += _TAG_STREAM_STARTED + _pack_fixed64(stream_started_ns)
        publisher_parts = (
            _TAG_PUBLISHER,
            _varint(len(publisher) + len(numbered)),
            publisher,
            numbered,
        )
    else:
        publisher_parts = (_TAG_PUBLISHER, _varint(len(publisher)), publisher, b"")
    parts = [
        _TAG_TOPIC,
        _varint(len(topic_bytes)),
        topic_bytes,
        _TAG_PAYLOAD,
        _varint(len(payload)),
        payload,
        _TAG_TIMESTAMP,
        _pack_fixed64(timestamp_ns),
        *publisher_parts,
    ]
    if correlation:
        parts += (_TAG_CORRELATION, _varint(len(correlation)), correlation)
    if reply_to:
        reply = reply_to.encode()
        parts += (_TAG_REPLY_TO, _varint(len(reply)), reply)
    body = b"".join(parts)
    head = _TAG_EVENT + _varint(len(body))
    return _pack_length(len(head) + len(body)) + head + body


_TAG_PUBLISH: Final = b"\x3a"
_TAG_REQUEST_ID: Final = b"\x08"
_TAG_PUB_TOPIC: Final = b"\x12"
_TAG_PUB_PAYLOAD: Final = b"\x1a"
_TAG_PUB_CORRELATION: Final = b"\x22"
_TAG_PUB_REPLY_TO: Final = b"\x2a"
_TAG_PUB_SEQUENCE: Final = b"\x30"
_TAG_PUB_STREAM_STARTED: Final = b"\x39"


def encode_publish(
    topic: str,
    payload: bytes,
    request_id: int = 0,
    correlation: bytes = b"",
    reply_to: str = "",
    *,
    sequence: int = 0,
    stream_started_ns: int = 0,
    max_frame: int | None = None,
) -> bytes:
    """A length-prefixed ``Frame{publish: Publish}``, byte-compatible with protobuf's.

    The client's hot path, like :func:`encode_event` for the broker. With ``max_frame``, a
    body over it raises :class:`FrameTooLarge`.
    """
    topic_bytes = topic.encode()
    parts = [
        _TAG_PUB_TOPIC,
        _varint(len(topic_bytes)),
        topic_bytes,
        _TAG_PUB_PAYLOAD,
        _varint(len(payload)),
        payload,
    ]
    if request_id:
        parts += (_TAG_REQUEST_ID, _varint(request_id))
    if correlation:
        parts += (_TAG_PUB_CORRELATION, _varint(len(correlation)), correlation)
    if reply_to:
        reply = reply_to.encode()
        parts += (_TAG_PUB_REPLY_TO, _varint(len(reply)), reply)
    if sequence:
        parts += (_TAG_PUB_SEQUENCE, _varint(sequence))
    if stream_started_ns:
        parts += (_TAG_PUB_STREAM_STARTED, _pack_fixed64(stream_started_ns))
    body = b"".join(parts)
    head = _TAG_PUBLISH + _varint(len(body))
    size = len(head) + len(body)
    if max_frame is not None and size > max_frame:
        raise FrameTooLarge(
            f"publish frame of {size} bytes exceeds the maximum of {max_frame} bytes"
        )
    return _pack_length(size) + head + body


_TAG_PUB_ACK: Final = b"\x42"
_MAX_U32: Final = 0xFFFFFFFF


def encode_pub_ack(request_id: int, delivered: int, dropped: int) -> bytes:
    """A length-prefixed ``Frame{pub_ack: PubAck}``, byte-compatible with protobuf's (zero
    fields left out). ``delivered`` and ``dropped`` are uint32 on the wire."""
    if not 0 <= delivered <= _MAX_U32 or not 0 <= dropped <= _MAX_U32:
        raise ValueError(f"PubAck counts must be uint32, not {delivered} and {dropped}")
    body = b"".join(
        (
            b"\x08" + _varint(request_id) if request_id else b"",
            b"\x10" + _varint(delivered) if delivered else b"",
            b"\x18" + _varint(dropped) if dropped else b"",
        )
    )
    size = len(body)
    return _pack_length(size + 2) + _TAG_PUB_ACK + _SMALL_VARINTS[size] + body
