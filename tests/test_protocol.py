"""Frame encoding/decoding and the mapping between wire error codes and exceptions."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventbus import errors
from eventbus.protocol import (
    DEFAULT_MAX_FRAME,
    LENGTH_PREFIX_SIZE,
    PROTOCOL_VERSION,
    code_for,
    code_name,
    decode_frame,
    encode_event,
    encode_frame,
    encode_publish,
    encode_publisher,
    error_frame,
    exception_for,
)
from eventbus.v1 import frames_pb2

IDENTITY = frames_pb2.ProcessIdentity(
    pid=4242, uid=1000, gid=1000, principal="procmond", connection_id=7, client_name="procmond-1"
)
CORRELATION = frames_pb2.CorrelationMetadata(
    correlation_id="c-1", parent_id="p", root_id="r", sequence=3, tags={"k": "v"}
)

# One populated example of every body kind of Frame.
EXAMPLES: dict[str, frames_pb2.Frame] = {
    "hello": frames_pb2.Frame(
        hello=frames_pb2.Hello(
            protocol_version=PROTOCOL_VERSION,
            principal="procmond",
            client_name="procmond-1",
            heartbeat_interval_ms=5000,
            options={"compression": "none"},
        )
    ),
    "welcome": frames_pb2.Frame(
        welcome=frames_pb2.Welcome(
            protocol_version=PROTOCOL_VERSION,
            connection_id=7,
            identity=IDENTITY,
            rights=frames_pb2.Rights(
                publish=["events.process.#"], subscribe=["control.collector.task.process"]
            ),
            limits=frames_pb2.Limits(max_frame_bytes=DEFAULT_MAX_FRAME, heartbeat_interval_ms=5000),
            broker_name="broker",
        )
    ),
    "subscribe": frames_pb2.Frame(
        subscribe=frames_pb2.Subscribe(request_id=1, filter="events.#", group="g")
    ),
    "sub_ack": frames_pb2.Frame(sub_ack=frames_pb2.SubAck(request_id=1, subscription_id=9)),
    "unsubscribe": frames_pb2.Frame(
        unsubscribe=frames_pb2.Unsubscribe(request_id=2, subscription_id=9)
    ),
    "unsub_ack": frames_pb2.Frame(unsub_ack=frames_pb2.UnsubAck(request_id=2)),
    "publish": frames_pb2.Frame(
        publish=frames_pb2.Publish(
            request_id=3,
            topic="events.process.lifecycle",
            payload=b"\x00\x01\xff",
            correlation=CORRELATION,
            reply_to="_INBOX.1",
        )
    ),
    "pub_ack": frames_pb2.Frame(pub_ack=frames_pb2.PubAck(request_id=3, delivered=2, dropped=1)),
    "event": frames_pb2.Frame(
        event=frames_pb2.EventEnvelope(
            topic="events.process.lifecycle",
            payload=b"payload",
            timestamp_ns=1_700_000_000_000_000_000,
            publisher=IDENTITY,
            correlation=CORRELATION,
        )
    ),
    "ping": frames_pb2.Frame(ping=frames_pb2.Ping(nonce=11)),
    "pong": frames_pb2.Frame(pong=frames_pb2.Pong(nonce=11)),
    "error": frames_pb2.Frame(
        error=frames_pb2.Error(
            request_id=4, code=frames_pb2.ERROR_CODE_INVALID_TOPIC, message="bad topic"
        )
    ),
    "list_request": frames_pb2.Frame(
        list_request=frames_pb2.ListRequest(request_id=5, all_clients=True)
    ),
    "list_reply": frames_pb2.Frame(
        list_reply=frames_pb2.ListReply(
            request_id=5,
            clients=[
                frames_pb2.ClientInfo(
                    identity=IDENTITY,
                    subscriptions=[frames_pb2.SubscriptionInfo(subscription_id=9, filter="a.#")],
                    messages_in=10,
                )
            ],
        )
    ),
    "dropped": frames_pb2.Frame(dropped=frames_pb2.Dropped(count=3, total=8)),
    "goodbye": frames_pb2.Frame(goodbye=frames_pb2.Goodbye(reason="shutting down")),
    "kick": frames_pb2.Frame(kick=frames_pb2.Kick(request_id=6, connection_id=7, reason="why")),
    "kick_reply": frames_pb2.Frame(
        kick_reply=frames_pb2.KickReply(
            request_id=6, client=frames_pb2.ClientInfo(identity=IDENTITY, denied=2)
        )
    ),
}


def test_examples_cover_every_body_kind() -> None:
    oneof = frames_pb2.Frame.DESCRIPTOR.oneofs_by_name["body"]
    assert {field.name for field in oneof.fields} == set(EXAMPLES)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_roundtrip_every_body_kind(kind: str) -> None:
    frame = EXAMPLES[kind]
    data = encode_frame(frame)
    (length,) = struct.unpack_from("<I", data)
    assert length == len(data) - LENGTH_PREFIX_SIZE
    decoded = decode_frame(data[LENGTH_PREFIX_SIZE:])
    assert decoded.WhichOneof("body") == kind
    assert decoded == frame


def test_length_prefix_is_four_bytes_little_endian() -> None:
    frame = frames_pb2.Frame(publish=frames_pb2.Publish(topic="t", payload=b"x" * 300))
    body = frame.SerializeToString()
    data = encode_frame(frame)
    assert LENGTH_PREFIX_SIZE == 4
    assert data[:4] == len(body).to_bytes(4, "little")
    assert data[4:] == body


def test_decode_accepts_any_buffer() -> None:
    body = EXAMPLES["publish"].SerializeToString()
    assert decode_frame(bytearray(body)) == EXAMPLES["publish"]
    assert decode_frame(memoryview(b"xx" + body)[2:]) == EXAMPLES["publish"]


def test_encode_enforces_max_frame_when_given() -> None:
    frame = frames_pb2.Frame(publish=frames_pb2.Publish(topic="t", payload=b"x" * 100))
    size = frame.ByteSize()
    assert len(encode_frame(frame, max_frame=size)) == size + 4
    with pytest.raises(errors.FrameTooLarge, match=rf"publish frame of {size} bytes"):
        encode_frame(frame, max_frame=size - 1)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff\xff\xff\xff",  # a varint that never ends
        b"\x3a\x05ab",  # field 7 (publish), length 5, only 2 bytes follow
        b"\x0f",  # wire type 7 does not exist
        b"\x3a\x02\x12\xff",  # publish.topic declared longer than its message
    ],
)
def test_garbage_raises_protocol_error(garbage: bytes) -> None:
    with pytest.raises(errors.ProtocolError, match=r"does not parse as eventbus\.v1\.Frame"):
        decode_frame(garbage)


def test_empty_frame_raises_protocol_error() -> None:
    with pytest.raises(errors.ProtocolError, match="empty frame"):
        decode_frame(b"")
    with pytest.raises(errors.ProtocolError, match="empty frame"):
        decode_frame(frames_pb2.Frame().SerializeToString())


def test_unknown_fields_are_tolerated() -> None:
    ping = frames_pb2.Frame(ping=frames_pb2.Ping(nonce=5)).SerializeToString()
    # Field 99, varint 1, at the top level; and field 50, bytes "hi", inside Ping.
    unknown_top = bytes([0x98, 0x06, 0x01])
    inner = frames_pb2.Ping(nonce=5).SerializeToString() + bytes([0x92, 0x03, 0x02]) + b"hi"
    nested = bytes([0x52, len(inner)]) + inner  # field 10 (ping), length-delimited
    for data in (unknown_top + ping, ping + unknown_top, nested):
        frame = decode_frame(data)
        assert frame.WhichOneof("body") == "ping"
        assert frame.ping.nonce == 5


def test_only_an_unknown_body_kind_is_an_empty_frame() -> None:
    # A frame kind from a newer protocol version (field 40, empty message).
    with pytest.raises(errors.ProtocolError, match="no known body"):
        decode_frame(bytes([0xC2, 0x02, 0x00]))


def test_error_frame() -> None:
    frame = error_frame(frames_pb2.ERROR_CODE_PERMISSION_DENIED, "denied by rule set x", 12)
    assert frame.WhichOneof("body") == "error"
    assert frame.error.code == frames_pb2.ERROR_CODE_PERMISSION_DENIED
    assert frame.error.message == "denied by rule set x"
    assert frame.error.request_id == 12
    assert error_frame(frames_pb2.ERROR_CODE_PROTOCOL, "bad").error.request_id == 0
    assert decode_frame(encode_frame(frame)[4:]) == frame


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (frames_pb2.ERROR_CODE_INVALID_TOPIC, errors.InvalidTopic),
        (frames_pb2.ERROR_CODE_PERMISSION_DENIED, errors.PermissionDenied),
        (frames_pb2.ERROR_CODE_UNAUTHENTICATED, errors.PermissionDenied),
        (frames_pb2.ERROR_CODE_NO_RESPONDERS, errors.NoResponders),
        (frames_pb2.ERROR_CODE_TIMEOUT, errors.Timeout),
        (frames_pb2.ERROR_CODE_FRAME_TOO_LARGE, errors.FrameTooLarge),
        (frames_pb2.ERROR_CODE_PROTOCOL, errors.ProtocolError),
        (frames_pb2.ERROR_CODE_UNSUPPORTED_VERSION, errors.ProtocolError),
        (frames_pb2.ERROR_CODE_HELLO_TIMEOUT, errors.ProtocolError),
        (frames_pb2.ERROR_CODE_SLOW_CONSUMER, errors.ConnectionLost),
        (frames_pb2.ERROR_CODE_SHUTTING_DOWN, errors.ConnectionLost),
        (frames_pb2.ERROR_CODE_NOT_FOUND, errors.EventBusError),
        (frames_pb2.ERROR_CODE_INTERNAL, errors.EventBusError),
        (frames_pb2.ERROR_CODE_UNSPECIFIED, errors.EventBusError),
    ],
)
def test_exception_for_code(code: frames_pb2.ErrorCode, expected: type[Exception]) -> None:
    exc = exception_for(frames_pb2.Error(code=code, message="what the broker said"))
    assert type(exc) is expected
    assert "what the broker said" in str(exc)
    assert code_name(code) in str(exc)


def test_exception_for_names_the_code_without_a_message() -> None:
    exc = exception_for(frames_pb2.Error(code=frames_pb2.ERROR_CODE_NOT_FOUND))
    assert str(exc) == "broker error NOT_FOUND"


def test_exception_for_unknown_code_from_a_newer_broker() -> None:
    error = frames_pb2.Error()
    error.ParseFromString(b"\x10\x63\x1a\x03new")  # code 99, message "new"
    exc = exception_for(error)
    assert type(exc) is errors.EventBusError
    assert str(exc) == "new [99]"


def test_code_name() -> None:
    assert code_name(frames_pb2.ERROR_CODE_PERMISSION_DENIED) == "PERMISSION_DENIED"
    assert code_name(12345) == "12345"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.InvalidTopic("a..b"), frames_pb2.ERROR_CODE_INVALID_TOPIC),
        (errors.PermissionDenied("no"), frames_pb2.ERROR_CODE_PERMISSION_DENIED),
        (errors.FrameTooLarge("big"), frames_pb2.ERROR_CODE_FRAME_TOO_LARGE),
        (errors.ProtocolError("bad"), frames_pb2.ERROR_CODE_PROTOCOL),
        (errors.NoResponders("none"), frames_pb2.ERROR_CODE_NO_RESPONDERS),
        (errors.Timeout("late"), frames_pb2.ERROR_CODE_TIMEOUT),
        (errors.EventBusError("other"), frames_pb2.ERROR_CODE_INTERNAL),
        (ValueError("plain"), frames_pb2.ERROR_CODE_INTERNAL),
        (TimeoutError("not ours"), frames_pb2.ERROR_CODE_INTERNAL),
        (KeyboardInterrupt(), frames_pb2.ERROR_CODE_INTERNAL),
    ],
)
def test_code_for_exception(exc: BaseException, code: int) -> None:
    assert code_for(exc) == code


@pytest.mark.parametrize(
    "exc",
    [
        errors.InvalidTopic("x"),
        errors.PermissionDenied("x"),
        errors.FrameTooLarge("x"),
        errors.ProtocolError("x"),
        errors.NoResponders("x"),
        errors.Timeout("x"),
    ],
)
def test_code_mapping_roundtrips(exc: errors.EventBusError) -> None:
    frame = error_frame(code_for(exc), str(exc), request_id=1)
    assert type(exception_for(decode_frame(encode_frame(frame)[4:]).error)) is type(exc)


# -- the broker's hand-written event encoder ---------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    topic=st.text(min_size=1, max_size=40),
    payload=st.binary(max_size=300),
    timestamp=st.integers(min_value=0, max_value=2**64 - 1),
    pid=st.integers(min_value=0, max_value=2**32 - 1),
    principal=st.text(max_size=20),
    connection_id=st.integers(min_value=0, max_value=2**64 - 1),
    correlation=st.one_of(
        st.none(),
        st.builds(
            frames_pb2.CorrelationMetadata,
            correlation_id=st.text(max_size=10),
            sequence=st.integers(min_value=0, max_value=2**64 - 1),
            tags=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
        ),
    ),
    reply_to=st.text(max_size=30),
)
def test_encode_event_parses_as_the_same_envelope(
    topic: str,
    payload: bytes,
    timestamp: int,
    pid: int,
    principal: str,
    connection_id: int,
    correlation: frames_pb2.CorrelationMetadata | None,
    reply_to: str,
) -> None:
    topic = topic.encode("utf-8", "replace").decode()
    principal = principal.encode("utf-8", "replace").decode()
    reply_to = reply_to.encode("utf-8", "replace").decode()
    identity = frames_pb2.ProcessIdentity(pid=pid, principal=principal, connection_id=connection_id)
    expected = frames_pb2.EventEnvelope(
        topic=topic,
        payload=payload,
        timestamp_ns=timestamp,
        publisher=identity,
        reply_to=reply_to,
    )
    corr_bytes = b""
    if correlation is not None:
        expected.correlation.CopyFrom(correlation)
        corr_bytes = correlation.SerializeToString()
    data = encode_event(topic, payload, timestamp, encode_publisher(identity), corr_bytes, reply_to)
    assert int.from_bytes(data[:4], "little") == len(data) - 4
    frame = decode_frame(data[4:])
    assert frame.WhichOneof("body") == "event"
    assert frame.event == expected


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    topic=st.text(min_size=1, max_size=40),
    payload=st.binary(max_size=300),
    request_id=st.integers(min_value=0, max_value=2**64 - 1),
    sequence=st.one_of(st.none(), st.integers(min_value=0, max_value=2**64 - 1)),
    reply_to=st.text(max_size=30),
)
def test_encode_publish_parses_as_the_same_publish(
    topic: str, payload: bytes, request_id: int, sequence: int | None, reply_to: str
) -> None:
    topic = topic.encode("utf-8", "replace").decode()
    reply_to = reply_to.encode("utf-8", "replace").decode()
    expected = frames_pb2.Publish(
        topic=topic, payload=payload, request_id=request_id, reply_to=reply_to
    )
    corr_bytes = b""
    if sequence is not None:
        expected.correlation.sequence = sequence
        corr_bytes = expected.correlation.SerializeToString()
    data = encode_publish(topic, payload, request_id, corr_bytes, reply_to)
    assert int.from_bytes(data[:4], "little") == len(data) - 4
    assert decode_frame(data[4:]).publish == expected


def test_encode_publish_refuses_a_frame_over_the_limit() -> None:
    with pytest.raises(errors.FrameTooLarge, match="exceeds the maximum of 100"):
        encode_publish("a.b", b"x" * 200, max_frame=100)
