"""Fuzz target: the wire decoders of ``eventbus.protocol`` on arbitrary frame bodies.

``decode_frame`` must return a Frame or raise ``ProtocolError``, and give the same answer for
the bytes as ``bytes``, ``bytearray`` and ``memoryview``. What it returns must survive what
the client and the broker do next: ``encode_frame`` round-trips it, ``exception_for`` and
``code_name`` turn any Error into a typed exception, and the hand-written encoders
(``encode_publish``, ``encode_event``) give back the same Publish or EventEnvelope fields.
Anything else raised, or a disagreement, is a crash.
"""

from __future__ import annotations

from _harness import fuzz, instrumented

with instrumented(__name__ == "__main__"):
    from eventbus.errors import EventBusError, ProtocolError
    from eventbus.protocol import (
        code_name,
        decode_frame,
        encode_event,
        encode_frame,
        encode_publish,
        encode_publisher,
        exception_for,
    )
    from eventbus.v1 import frames_pb2

# Fields compared after a hand-written encoder: unknown fields of the message itself are
# not carried (the broker and the client never send them), those of submessages are.
PUBLISH_FIELDS = ("request_id", "topic", "payload", "correlation", "reply_to")
EVENT_FIELDS = ("topic", "payload", "timestamp_ns", "publisher", "correlation", "reply_to")


def decoded(body: bytes | bytearray | memoryview) -> frames_pb2.Frame | str:
    """The frame, or the ``ProtocolError`` message."""
    try:
        return decode_frame(body)
    except ProtocolError as exc:
        return str(exc)


def same_fields(kind: str, got: object, expected: object, fields: tuple[str, ...]) -> None:
    for name in fields:
        if getattr(got, name) != getattr(expected, name):
            raise AssertionError(
                f"{kind}.{name}: {getattr(got, name)!r} != {getattr(expected, name)!r}"
            )


def correlation_of(message: frames_pb2.Publish | frames_pb2.EventEnvelope) -> bytes:
    # As the broker does: the submessage's bytes, only when it is present.
    return message.correlation.SerializeToString() if message.HasField("correlation") else b""


def TestOneInput(data: bytes) -> None:
    frame = decoded(data)
    for other in (bytearray(data), memoryview(b"\x00" + data)[1:]):
        if decoded(other) != frame:
            raise AssertionError(f"{type(other).__name__} decodes otherwise than bytes")
    if isinstance(frame, str):
        return

    encoded = encode_frame(frame)
    if int.from_bytes(encoded[:4], "little") != len(encoded) - 4:
        raise AssertionError("encode_frame: the length prefix does not count the body")
    if decode_frame(encoded[4:]) != frame:
        raise AssertionError("encode_frame does not round-trip")

    kind = frame.WhichOneof("body")
    if kind == "error":
        exc = exception_for(frame.error)
        if not isinstance(exc, EventBusError) or not isinstance(code_name(frame.error.code), str):
            raise AssertionError(f"exception_for gave {exc!r}")
    elif kind == "publish":
        publish = frame.publish
        data = encode_publish(
            publish.topic,
            publish.payload,
            publish.request_id,
            correlation_of(publish),
            publish.reply_to,
        )
        same_fields(kind, decode_frame(data[4:]).publish, publish, PUBLISH_FIELDS)
    elif kind == "event":
        event = frame.event
        data = encode_event(
            event.topic,
            event.payload,
            event.timestamp_ns,
            encode_publisher(event.publisher),
            correlation_of(event),
            event.reply_to,
        )
        same_fields(kind, decode_frame(data[4:]).event, event, EVENT_FIELDS)


if __name__ == "__main__":
    fuzz(TestOneInput)
