"""The hot frames read from the wire, pure-Python reference of ``_fast/_wire.pyx``.

Decoders that read a Publish, an EventEnvelope or a PubAck straight from a frame body,
without building the generated messages (their encoders are ``eventbus._encode``).

The decoders follow the protobuf wire format as protobuf itself parses it:

- fields may come in any order; unknown fields (varint, fixed64, length-delimited, fixed32
  and groups) are skipped, and so is a known field number sent with another wire type than
  its own;
- a scalar, string or bytes field sent more than once keeps its last value;
- an embedded message sent more than once is merged: its raw bytes are the concatenation of
  every occurrence, which protobuf parses as the merge of them (``correlation``,
  ``publisher``); the frame body itself likewise, when the same Frame field comes again;
- of the Frame's ``body`` oneof, the last member present wins: a body that ends with
  another member is not a publish (or event) frame, and the occurrences before the last
  change of member are dropped, as protobuf drops them;
- ``topic`` and ``reply_to`` must be valid UTF-8, every occurrence (proto3 strings).

They refuse with :class:`ProtocolError`: a varint cut by the end of its message or longer
than 10 bytes, a tag over 32 bits, field number 0, wire types 6 and 7, a length or fixed-
size value past the end, a group that is not closed (or closed by another field's end tag),
an end-group tag outside a group and groups nested deeper than 100 (protobuf's recursion
limit). Embedded messages kept raw (``PublishView.correlation``, ``EventView``'s
``publisher`` and ``correlation`` until they are first read) and the bodies of other oneof
members are not checked here; protobuf checks them as it parses them. The values of varints
over 64 bits keep their low 64 bits, as protobuf's do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, TypeVar

from google.protobuf.message import DecodeError, Message

from .errors import ProtocolError
from .v1 import frames_pb2

__all__ = [
    "FRAME_EVENT",
    "FRAME_PUBLISH",
    "FRAME_PUB_ACK",
    "EventView",
    "PubAckView",
    "PublishView",
    "decode_event",
    "decode_pub_ack",
    "decode_publish",
    "frame_kind",
]

FRAME_PUBLISH: Final = 7
"""``frame_kind`` of a Publish frame (its field number in ``Frame``)."""

FRAME_EVENT: Final = 9
"""``frame_kind`` of an Event frame."""

FRAME_PUB_ACK: Final = 8
"""``frame_kind`` of a PubAck frame."""

_MASK64: Final = (1 << 64) - 1
_MASK32: Final = (1 << 32) - 1
_MAX_TAG: Final = (1 << 32) - 1
_M = TypeVar("_M", bound=Message)
_LAST_BODY_FIELD: Final = 18  # Frame's oneof members are its fields 1..18, all messages
_MAX_GROUP_DEPTH: Final = 100


# --- decoding -------------------------------------------------------------------------------


def _error(what: str, data: bytes, reason: str, at: int) -> ProtocolError:
    return ProtocolError(f"{what} of {len(data)} bytes does not parse: {reason} at byte {at}")


def _read_varint(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """The varint at ``pos`` (ending by ``end``) and the position after it."""
    start = pos
    value = 0
    shift = 0
    while shift < 70:
        if pos >= end:
            raise _error(what, data, "varint runs past the end", start)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & _MASK64, pos
        shift += 7
    raise _error(what, data, "varint longer than 10 bytes", start)


def _fields(
    data: bytes, pos: int, end: int, what: str, depth: int = 0
) -> Iterator[tuple[int, int, int, int]]:
    """Every field of the message in ``data[pos:end]``, as ``(number, wire type, a, b)``:
    ``a`` the value of a varint or fixed field, or ``data[a:b]`` the bytes of a
    length-delimited one. Yielded as read, so that an error is the first one in the bytes,
    whatever kind (as the compiled twin finds it). Groups are skipped whole; inside one
    (``depth`` > 0) its end tag is yielded as ``(number, 4, position after it, its start)``."""
    while pos < end:
        at = pos
        byte = data[pos]
        if byte < 0x80:
            tag = byte
            pos += 1
        else:
            tag, pos = _read_varint(data, pos, end, what)
            if tag > _MAX_TAG:
                raise _error(what, data, "tag over 32 bits", at)
        number = tag >> 3
        wire = tag & 7
        if number == 0:
            raise _error(what, data, "field number 0", at)
        if wire == 2:
            byte = data[pos] if pos < end else 0x80
            if byte < 0x80:
                length = byte
                pos += 1
            else:
                length, pos = _read_varint(data, pos, end, what)
            if length > end - pos:
                raise _error(what, data, f"length-delimited field {number} runs past the end", at)
            yield (number, 2, pos, pos + length)
            pos += length
        elif wire == 0:
            value, pos = _read_varint(data, pos, end, what)
            yield (number, 0, value, 0)
        elif wire == 1:
            if end - pos < 8:
                raise _error(what, data, f"fixed64 field {number} runs past the end", at)
            yield (number, 1, int.from_bytes(data[pos : pos + 8], "little"), 0)
            pos += 8
        elif wire == 5:
            if end - pos < 4:
                raise _error(what, data, f"fixed32 field {number} runs past the end", at)
            yield (number, 5, int.from_bytes(data[pos : pos + 4], "little"), 0)
            pos += 4
        elif wire == 3:
            pos = _skip_group(data, pos, end, what, number, at, depth + 1)
        elif wire == 4:
            if depth == 0:
                raise _error(what, data, f"end-group tag in field {number} outside a group", at)
            yield (number, 4, pos, at)
            return
        else:
            raise _error(what, data, f"unsupported wire type {wire} in field {number}", at)


def _skip_group(
    data: bytes, pos: int, end: int, what: str, number: int, at: int, depth: int
) -> int:
    """The position after the end tag of the group of field ``number`` opened at ``at``."""
    if depth > _MAX_GROUP_DEPTH:
        raise _error(what, data, f"groups nested deeper than {_MAX_GROUP_DEPTH}", at)
    for inner, wire, after, start in _fields(data, pos, end, what, depth):
        if wire == 4:
            if inner != number:
                reason = f"end-group tag in field {inner} does not match its group"
                raise _error(what, data, reason, start)
            return after
    raise _error(what, data, f"group in field {number} is not closed", at)


def _as_bytes(body: bytes | bytearray | memoryview) -> bytes:
    if type(body) is bytes:
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"a frame body must be bytes-like, not {type(body).__name__}")


def _body_spans(data: bytes, kind: int, what: str) -> list[tuple[int, int]]:
    """The spans of the occurrences of Frame field ``kind`` that make the frame's body."""
    spans: list[tuple[int, int]] = []
    last = 0
    for number, wire, start, end in _fields(data, 0, len(data), what):
        if wire == 2 and number <= _LAST_BODY_FIELD:
            last = number
            if number == kind:
                spans.append((start, end))
            else:
                spans.clear()
    if last != kind:
        found = f"has body field {last}" if last else "has no body"
        raise ProtocolError(f"{what} expected: the frame of {len(data)} bytes {found}")
    return spans


def _text(data: bytes, start: int, end: int, what: str, name: str) -> str:
    try:
        return data[start:end].decode()
    except UnicodeDecodeError:
        raise ProtocolError(
            f"{what} of {len(data)} bytes does not parse: {name} is not valid UTF-8"
        ) from None


def _joined(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    if len(spans) == 1:
        start, end = spans[0]
        return data[start:end]
    return b"".join(data[start:end] for start, end in spans)


def frame_kind(body: bytes | bytearray | memoryview) -> int:
    """The Frame field number of the ``body`` oneof member set (the last one present), or 0.

    ``FRAME_PUBLISH`` and ``FRAME_EVENT`` go to :func:`decode_publish` and
    :func:`decode_event`; every other kind to the generated classes. Raises
    :class:`ProtocolError` when the top level of the body is not well-formed.
    """
    data = _as_bytes(body)
    last = 0
    for number, wire, _, _ in _fields(data, 0, len(data), "frame"):
        if wire == 2 and number <= _LAST_BODY_FIELD:
            last = number
    return last


class PublishView:
    """A Publish read from a frame body (see :func:`decode_publish`)."""

    __slots__ = (
        "correlation",
        "payload",
        "reply_to",
        "request_id",
        "sequence",
        "stream_started_ns",
        "topic",
    )

    request_id: int
    topic: str
    payload: bytes
    correlation: bytes
    """The serialized ``CorrelationMetadata`` as received (merged occurrences), b"" if absent."""
    reply_to: str
    sequence: int
    stream_started_ns: int


def decode_publish(body: bytes | bytearray | memoryview) -> PublishView:
    """The Publish of a frame body whose oneof member is ``publish``.

    Raises :class:`ProtocolError` when the body is malformed or not a publish frame.
    """
    data = _as_bytes(body)
    what = "publish frame"
    view = PublishView()
    view.request_id = view.sequence = view.stream_started_ns = 0
    topic = reply_to = ""
    payload = (0, 0)
    correlation: list[tuple[int, int]] = []
    for outer_start, outer_end in _body_spans(data, FRAME_PUBLISH, what):
        for number, wire, a, b in _fields(data, outer_start, outer_end, what):
            if wire == 2:
                if number == 2:
                    topic = _text(data, a, b, what, "topic")
                elif number == 3:
                    payload = (a, b)
                elif number == 4:
                    correlation.append((a, b))
                elif number == 5:
                    reply_to = _text(data, a, b, what, "reply_to")
            elif wire == 0:
                if number == 1:
                    view.request_id = a
                elif number == 6:
                    view.sequence = a
            elif wire == 1 and number == 7:
                view.stream_started_ns = a
    view.topic = topic
    view.payload = data[payload[0] : payload[1]]
    view.correlation = _joined(data, correlation) if correlation else b""
    view.reply_to = reply_to
    return view


class PubAckView:
    """A PubAck read from a frame body (see :func:`decode_pub_ack`)."""

    __slots__ = ("delivered", "dropped", "request_id")

    def __init__(self, request_id: int, delivered: int, dropped: int) -> None:
        self.request_id = request_id
        self.delivered = delivered
        self.dropped = dropped


def decode_pub_ack(body: bytes | bytearray | memoryview) -> PubAckView:
    """The PubAck of a frame body whose oneof member is ``pub_ack`` (a confirmed publish's
    answer, as hot as the publishes when many are in flight). ``delivered`` and
    ``dropped`` are uint32: a larger varint keeps its low 32 bits, as protobuf's does.

    Raises :class:`ProtocolError` when the body is malformed or not a pub_ack frame.
    """
    data = _as_bytes(body)
    what = "pub_ack frame"
    request_id = delivered = dropped = 0
    for outer_start, outer_end in _body_spans(data, FRAME_PUB_ACK, what):
        for number, wire, a, _ in _fields(data, outer_start, outer_end, what):
            if wire == 0:
                if number == 1:
                    request_id = a
                elif number == 2:
                    delivered = a & _MASK32
                elif number == 3:
                    dropped = a & _MASK32
    return PubAckView(request_id, delivered, dropped)


_UNREAD: Final = object()


class EventView:
    """An EventEnvelope read from a frame body (see :func:`decode_event`).

    ``topic``, ``payload``, ``timestamp_ns`` and ``reply_to`` are read at once; the
    ``publisher`` and ``correlation`` messages are parsed on first access, and
    ``publisher_instance_id`` / ``publisher_sequence`` read those two fields from the
    publisher's bytes without building the message.
    """

    __slots__ = (
        "_correlation",
        "_correlation_raw",
        "_ids",
        "_publisher",
        "_publisher_raw",
        "payload",
        "reply_to",
        "timestamp_ns",
        "topic",
    )

    topic: str
    payload: bytes
    timestamp_ns: int
    reply_to: str

    def __init__(self, publisher_raw: bytes, correlation_raw: bytes | None) -> None:
        self._publisher_raw = publisher_raw
        self._correlation_raw = correlation_raw
        self._publisher: frames_pb2.ProcessIdentity | None = None
        self._correlation: object = _UNREAD
        self._ids: tuple[int, int] | None = None

    @property
    def publisher(self) -> frames_pb2.ProcessIdentity:
        """The publisher's identity (empty when the envelope has none).

        Raises :class:`ProtocolError` when its bytes do not parse.
        """
        if self._publisher is None:
            self._publisher = _parse(frames_pb2.ProcessIdentity, self._publisher_raw, "publisher")
        return self._publisher

    @property
    def correlation(self) -> frames_pb2.CorrelationMetadata | None:
        """The correlation metadata, or None when the envelope has none.

        Raises :class:`ProtocolError` when its bytes do not parse.
        """
        if self._correlation is _UNREAD:
            raw = self._correlation_raw
            self._correlation = (
                None if raw is None else _parse(frames_pb2.CorrelationMetadata, raw, "correlation")
            )
        return self._correlation  # type: ignore[return-value]

    @property
    def publisher_instance_id(self) -> int:
        """``publisher.instance_id``, read from the raw bytes (0 when absent)."""
        return self._publisher_ids()[0]

    @property
    def publisher_sequence(self) -> int:
        """``publisher.sequence``, read from the raw bytes (0 when absent)."""
        return self._publisher_ids()[1]

    def _publisher_ids(self) -> tuple[int, int]:
        if self._ids is None:
            publisher = self._publisher
            if publisher is not None:
                self._ids = (publisher.instance_id, publisher.sequence)
                return self._ids
            raw = self._publisher_raw
            instance_id = sequence = 0
            for number, wire, value, _ in _fields(raw, 0, len(raw), "event publisher"):
                if number == 7 and wire == 1:
                    instance_id = value
                elif number == 8 and wire == 0:
                    sequence = value
            self._ids = (instance_id, sequence)
        return self._ids


_V = TypeVar("_V", bound=EventView)


def event_view(cls: type[_V], event: frames_pb2.EventEnvelope) -> _V:
    """An EventView of ``cls`` (EventView or a subclass) with the fields of an EventEnvelope
    protobuf has already parsed: on this core its parser is faster than ``decode_event``."""
    view = cls.__new__(cls)
    view.topic = event.topic
    view.payload = event.payload
    view.timestamp_ns = event.timestamp_ns
    view.reply_to = event.reply_to
    view._publisher_raw = b""
    view._correlation_raw = None
    view._publisher = event.publisher
    view._correlation = event.correlation if event.HasField("correlation") else None
    view._ids = None
    return view


def _parse(cls: type[_M], raw: bytes, name: str) -> _M:
    try:
        return cls.FromString(raw)
    except DecodeError:
        raise ProtocolError(
            f"event {name} of {len(raw)} bytes does not parse as {cls.DESCRIPTOR.full_name}"
        ) from None


def decode_event(body: bytes | bytearray | memoryview) -> EventView:
    """The EventEnvelope of a frame body whose oneof member is ``event``.

    Raises :class:`ProtocolError` when the body is malformed or not an event frame.
    """
    data = _as_bytes(body)
    what = "event frame"
    topic = reply_to = ""
    timestamp_ns = 0
    payload = (0, 0)
    publisher: list[tuple[int, int]] = []
    correlation: list[tuple[int, int]] = []
    for outer_start, outer_end in _body_spans(data, FRAME_EVENT, what):
        for number, wire, a, b in _fields(data, outer_start, outer_end, what):
            if wire == 2:
                if number == 1:
                    topic = _text(data, a, b, what, "topic")
                elif number == 2:
                    payload = (a, b)
                elif number == 4:
                    publisher.append((a, b))
                elif number == 5:
                    correlation.append((a, b))
                elif number == 6:
                    reply_to = _text(data, a, b, what, "reply_to")
            elif wire == 1 and number == 3:
                timestamp_ns = a
    view = EventView(
        _joined(data, publisher) if publisher else b"",
        _joined(data, correlation) if correlation else None,
    )
    view.topic = topic
    view.payload = data[payload[0] : payload[1]]
    view.timestamp_ns = timestamp_ns
    view.reply_to = reply_to
    return view
