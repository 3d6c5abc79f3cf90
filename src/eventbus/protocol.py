"""One frame at a time: encode and decode a `Frame`, and map wire error codes to exceptions.

A frame on the wire is a 4-byte little-endian unsigned length N followed by N bytes of one
serialized `eventbus.v1.Frame`. Splitting a byte stream into frame bodies is the framing
layer's job; this module turns one body into a `Frame` and back, and translates between the
broker's `Error` frames and the typed exceptions of `eventbus.errors`.
"""

from __future__ import annotations

import struct
from typing import Final

from google.protobuf.message import DecodeError

from eventbus._framing import DEFAULT_MAX_FRAME
from eventbus.errors import (
    ConnectionLost,
    EventBusError,
    FrameTooLarge,
    InvalidTopic,
    NoResponders,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    Timeout,
)
from eventbus.v1 import frames_pb2

__all__ = [
    "CLOSING_CODES",
    "DEFAULT_MAX_FRAME",
    "LENGTH_PREFIX_SIZE",
    "MAX_FRAME_LIMIT",
    "PROTOCOL_VERSION",
    "code_for",
    "code_name",
    "decode_frame",
    "encode_event",
    "encode_frame",
    "encode_publish",
    "encode_publisher",
    "error_frame",
    "exception_for",
]

PROTOCOL_VERSION: Final = 1
"""The version a client sends in Hello and the broker answers in Welcome."""

_LENGTH: Final = struct.Struct("<I")
_pack_length: Final = _LENGTH.pack

LENGTH_PREFIX_SIZE: Final = _LENGTH.size
"""Bytes of the length prefix in front of every frame body (4)."""

MAX_FRAME_LIMIT: Final = (1 << 32) - 1
"""The largest body the 4-byte length prefix can describe."""

_BODY: Final = "body"

# Received codes -> exception class. Codes not listed (NOT_FOUND, INTERNAL, UNSPECIFIED and
# codes newer than this module) become a plain EventBusError.
_EXCEPTION_FOR_CODE: Final[dict[int, type[EventBusError]]] = {
    frames_pb2.ERROR_CODE_INVALID_TOPIC: InvalidTopic,
    frames_pb2.ERROR_CODE_PERMISSION_DENIED: PermissionDenied,
    frames_pb2.ERROR_CODE_UNAUTHENTICATED: PermissionDenied,
    frames_pb2.ERROR_CODE_NO_RESPONDERS: NoResponders,
    frames_pb2.ERROR_CODE_TIMEOUT: Timeout,
    frames_pb2.ERROR_CODE_FRAME_TOO_LARGE: FrameTooLarge,
    frames_pb2.ERROR_CODE_PROTOCOL: ProtocolError,
    frames_pb2.ERROR_CODE_UNSUPPORTED_VERSION: ProtocolError,
    frames_pb2.ERROR_CODE_HELLO_TIMEOUT: ProtocolError,
    frames_pb2.ERROR_CODE_SLOW_CONSUMER: ConnectionLost,
    frames_pb2.ERROR_CODE_SHUTTING_DOWN: ConnectionLost,
    frames_pb2.ERROR_CODE_QUOTA_EXCEEDED: QuotaExceeded,
}

CLOSING_CODES: Final = frozenset(
    {
        frames_pb2.ERROR_CODE_PROTOCOL,
        frames_pb2.ERROR_CODE_FRAME_TOO_LARGE,
        frames_pb2.ERROR_CODE_HELLO_TIMEOUT,
        frames_pb2.ERROR_CODE_UNSUPPORTED_VERSION,
        frames_pb2.ERROR_CODE_UNAUTHENTICATED,
        frames_pb2.ERROR_CODE_SLOW_CONSUMER,
        frames_pb2.ERROR_CODE_SHUTTING_DOWN,
        frames_pb2.ERROR_CODE_TIMEOUT,
        frames_pb2.ERROR_CODE_QUOTA_EXCEEDED,
    }
)
"""Codes that, in an Error answering no request (request id 0), end the connection."""

# Exception class -> code sent by the broker. Most specific first: FrameTooLarge is a
# ProtocolError.
_CODE_FOR_EXCEPTION: Final[tuple[tuple[type[BaseException], frames_pb2.ErrorCode], ...]] = (
    (InvalidTopic, frames_pb2.ERROR_CODE_INVALID_TOPIC),
    (PermissionDenied, frames_pb2.ERROR_CODE_PERMISSION_DENIED),
    (FrameTooLarge, frames_pb2.ERROR_CODE_FRAME_TOO_LARGE),
    (ProtocolError, frames_pb2.ERROR_CODE_PROTOCOL),
    (NoResponders, frames_pb2.ERROR_CODE_NO_RESPONDERS),
    (Timeout, frames_pb2.ERROR_CODE_TIMEOUT),
    (QuotaExceeded, frames_pb2.ERROR_CODE_QUOTA_EXCEEDED),
)


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    if value < 0x80:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS: Final = tuple(bytes((n,)) for n in range(0x80))
_pack_fixed64: Final = struct.Struct("<Q").pack
# Tags (field number << 3 | wire type) of Frame.event and the EventEnvelope fields.
_TAG_EVENT: Final = b"\x4a"
_TAG_TOPIC: Final = b"\x0a"
_TAG_PAYLOAD: Final = b"\x12"
_TAG_TIMESTAMP: Final = b"\x19"
_TAG_PUBLISHER: Final = b"\x22"
_TAG_CORRELATION: Final = b"\x2a"
_TAG_REPLY_TO: Final = b"\x32"
# ProcessIdentity.sequence (field 8, varint): the last field, so it can follow the fixed part.
_TAG_SEQUENCE: Final = b"\x40"


def _frame(tag: bytes, parts: list[bytes]) -> bytes:
    """Length prefix + a Frame whose one field ``tag`` holds the message made of ``parts``."""
    body = b"".join(parts)
    head = tag + _varint(len(body))
    return _pack_length(len(head) + len(body)) + head + body


def encode_publisher(identity: frames_pb2.ProcessIdentity) -> bytes:
    """The fixed part of ``EventEnvelope.publisher`` (the identity without its sequence),
    serialized once per connection for :func:`encode_event`."""
    return identity.SerializeToString()


def encode_event(
    topic: str,
    payload: bytes,
    timestamp_ns: int,
    publisher: bytes,
    correlation: bytes = b"",
    reply_to: str = "",
    sequence: int = 0,
) -> bytes:
    """A length-prefixed ``Frame{event: EventEnvelope}``, byte-compatible with protobuf's.

    The broker's hot path: the same bytes as building the messages and serializing them,
    without creating any message object. ``publisher`` comes from :func:`encode_publisher`
    and ``sequence`` (0: none) is appended to it as ``publisher.sequence``; ``correlation``
    is a serialized ``CorrelationMetadata`` (empty when absent).
    """
    topic_bytes = topic.encode()
    if sequence:
        numbered = _TAG_SEQUENCE + _varint(sequence)
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
    return _frame(_TAG_EVENT, parts)


_TAG_PUBLISH: Final = b"\x3a"
_TAG_REQUEST_ID: Final = b"\x08"
_TAG_PUB_TOPIC: Final = b"\x12"
_TAG_PUB_PAYLOAD: Final = b"\x1a"
_TAG_PUB_CORRELATION: Final = b"\x22"
_TAG_PUB_REPLY_TO: Final = b"\x2a"
_TAG_PUB_SEQUENCE: Final = b"\x30"


def encode_publish(
    topic: str,
    payload: bytes,
    request_id: int = 0,
    correlation: bytes = b"",
    reply_to: str = "",
    *,
    sequence: int = 0,
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
    body = b"".join(parts)
    head = _TAG_PUBLISH + _varint(len(body))
    size = len(head) + len(body)
    if max_frame is not None and size > max_frame:
        raise FrameTooLarge(
            f"publish frame of {size} bytes exceeds the maximum of {max_frame} bytes"
        )
    return _pack_length(size) + head + body


def encode_frame(frame: frames_pb2.Frame, *, max_frame: int | None = None) -> bytes:
    """Serialize `frame` with its 4-byte little-endian length prefix.

    With `max_frame`, a body longer than that many bytes raises FrameTooLarge instead of
    being sent to a peer that would reject it and close the connection.
    """
    body = frame.SerializeToString()
    size = len(body)
    limit = MAX_FRAME_LIMIT if max_frame is None else max_frame
    if size > limit:
        kind = frame.WhichOneof(_BODY)
        raise FrameTooLarge(f"{kind} frame of {size} bytes exceeds the maximum of {limit} bytes")
    return _pack_length(size) + body


def decode_frame(body: bytes | bytearray | memoryview) -> frames_pb2.Frame:
    """Parse one frame body (without its length prefix).

    Fields this version does not know are kept and ignored, so a newer peer can add fields.
    Raises ProtocolError when the bytes are not a Frame, or when no body is set (an empty
    frame, or only a frame kind newer than this protocol version).
    """
    frame = frames_pb2.Frame()
    try:
        # Any buffer parses without a copy; the stubs only admit bytes.
        frame.ParseFromString(body)  # type: ignore[arg-type]
    except DecodeError as exc:
        raise ProtocolError(
            f"frame of {len(body)} bytes does not parse as eventbus.v1.Frame: {exc}"
        ) from exc
    if frame.WhichOneof(_BODY) is None:
        raise ProtocolError(
            f"empty frame: {len(body)} bytes with no known body set"
            " (a Frame must carry exactly one of its body fields)"
        )
    return frame


def error_frame(code: frames_pb2.ErrorCode, message: str, request_id: int = 0) -> frames_pb2.Frame:
    """An Error frame; `request_id` echoes the request it answers (0: none, then the
    connection closes)."""
    return frames_pb2.Frame(
        error=frames_pb2.Error(request_id=request_id, code=code, message=message)
    )


def code_name(code: int) -> str:
    """The short name of an error code (`"PERMISSION_DENIED"`), or its number if unknown."""
    try:
        name = frames_pb2.ErrorCode.Name(code)
    except ValueError:
        return str(code)
    return name.removeprefix("ERROR_CODE_")


def exception_for(error: frames_pb2.Error) -> EventBusError:
    """The typed exception for an Error frame received from the broker.

    The message carries the broker's own message and the code's name, e.g.
    `"publish to control.x denied by rule set default [PERMISSION_DENIED]"`.
    """
    cls = _EXCEPTION_FOR_CODE.get(error.code, EventBusError)
    name = code_name(error.code)
    text = f"{error.message} [{name}]" if error.message else f"broker error {name}"
    return cls(text)


def code_for(exc: BaseException) -> frames_pb2.ErrorCode:
    """The error code the broker answers for `exc` (INTERNAL for anything unexpected)."""
    for cls, code in _CODE_FOR_EXCEPTION:
        if isinstance(exc, cls):
            return code
    return frames_pb2.ERROR_CODE_INTERNAL
