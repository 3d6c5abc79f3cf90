"""One frame at a time: encode and decode a `Frame`, and map wire error codes to exceptions.

A frame on the wire is a 4-byte little-endian unsigned length N followed by N bytes of one
serialized `eventbus.v1.Frame`. Splitting a byte stream into frame bodies is the framing
layer's job; this module turns one body into a `Frame` and back, and translates between the
broker's `Error` frames and the typed exceptions of `eventbus.errors`.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from google.protobuf.message import DecodeError

from eventbus import _wire
from eventbus._backend import (
    BACKEND,
    FRAME_EVENT,
    FRAME_PUB_ACK,
    FRAME_PUBLISH,
    decode_event,
    decode_pub_ack,
    decode_publish,
    encode_event,
    encode_pub_ack,
    encode_publish,
    frame_kind,
)
from eventbus._framing import DEFAULT_MAX_FRAME
from eventbus.errors import (
    ConnectionLost,
    EventBusError,
    FrameTooLarge,
    InvalidTopic,
    Kicked,
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
    "INBOX_PREFIX",
    "LENGTH_PREFIX_SIZE",
    "MAX_FRAME_LIMIT",
    "PROTOCOL_VERSION",
    "code_for",
    "code_name",
    "decode_frame",
    "encode_event",
    "encode_frame",
    "encode_pub_ack",
    "encode_publish",
    "encode_publisher",
    "error_frame",
    "exception_for",
    "read_frame",
]

INBOX_PREFIX: Final = "$INBOX."
"""Connection N receives the replies to its requests on ``$INBOX.N.<anything>``."""

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
    frames_pb2.ERROR_CODE_KICKED: Kicked,
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
        frames_pb2.ERROR_CODE_KICKED,
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


def encode_publisher(identity: frames_pb2.ProcessIdentity) -> bytes:
    """The fixed part of ``EventEnvelope.publisher`` (the identity without its sequence),
    serialized once per connection for :func:`encode_event`.

    :func:`encode_event` and :func:`encode_publish`, the hand-written encoders of the hot
    path, come from the selected core (``eventbus._wire`` or its compiled twin).
    """
    return identity.SerializeToString()


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


def read_frame(body: bytes) -> tuple[str | None, Any]:
    """One frame body's kind (``"publish"``, ``"event"``, ``"ping"``...) and its message.

    The hot kinds come as views with the fields their readers use: a Publish with
    ``correlation`` as serialized bytes (``PublishView``), an EventEnvelope with its
    publisher parsed on first use and ``publisher_instance_id`` / ``publisher_sequence``
    (``EventView``), a PubAck with its three counts (``PubAckView``). The compiled core
    reads them straight from the bytes; on the pure-Python core protobuf's own parser is
    the faster one, so the same views are built on its messages (a PubAck is the
    message). Every other kind is its generated message. A frame that parses but whose
    body is a kind this version does not know is ``(None, None)``. Raises
    :class:`ProtocolError` for bytes that are not a Frame.
    """
    return _read_frame(body)


def _read_compiled(body: bytes) -> tuple[str | None, Any]:
    kind = frame_kind(body)
    if kind == FRAME_PUBLISH:
        return "publish", decode_publish(body)
    if kind == FRAME_EVENT:
        return "event", decode_event(body)
    if kind == FRAME_PUB_ACK:
        return "pub_ack", decode_pub_ack(body)
    return _read_generated(body)


def _read_generated(body: bytes) -> tuple[str | None, Any]:
    try:
        frame = frames_pb2.Frame.FromString(body)
    except DecodeError as exc:
        raise ProtocolError(f"frame of {len(body)} bytes does not parse: {exc}") from None
    kind = frame.WhichOneof(_BODY)
    if kind is None:
        return None, None
    message = getattr(frame, kind)
    if kind == "publish":
        return kind, _PublishMessage(message)
    if kind == "event":
        return kind, _wire.event_view(_wire.EventView, message)
    return kind, message


class _PublishMessage:
    """A generated Publish with the fields of a ``PublishView``."""

    __slots__ = (
        "correlation",
        "payload",
        "reply_to",
        "request_id",
        "sequence",
        "stream_started_ns",
        "topic",
    )

    def __init__(self, publish: frames_pb2.Publish) -> None:
        self.request_id = publish.request_id
        self.topic = publish.topic
        self.payload = publish.payload
        self.correlation = (
            publish.correlation.SerializeToString() if publish.HasField("correlation") else b""
        )
        self.reply_to = publish.reply_to
        self.sequence = publish.sequence
        self.stream_started_ns = publish.stream_started_ns


_read_frame = _read_compiled if BACKEND == "cython" else _read_generated


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
