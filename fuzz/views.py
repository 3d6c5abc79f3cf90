"""Fuzz target: the hot-frame views of both wire twins, on arbitrary frame bodies.

``frame_kind``, ``decode_publish``, ``decode_event`` and ``decode_pub_ack`` of the compiled
twin and of the pure-Python reference must give the same answer for the same bytes (the same
fields, or a ``ProtocolError`` with the same message), and on a body protobuf accepts as a
publish, an event or a pub_ack, the fields protobuf reads. Anything else raised, or a
disagreement, is a crash. The compiled twin is the one instrumented (its code is C), the
reference is compared with it.
"""

from __future__ import annotations

from typing import Any

from _harness import fuzz, instrumented

with instrumented(__name__ == "__main__"):
    from eventbus import _wire
    from eventbus.errors import ProtocolError
    from eventbus.v1 import frames_pb2

    try:
        from eventbus._fast import _wire as _compiled
    except ImportError:  # a pure-Python install: the reference against protobuf alone
        _compiled = _wire

TWINS = (_wire, _compiled)


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except ProtocolError as exc:
        return "error", str(exc)


def publish_fields(view: Any) -> tuple[Any, ...]:
    return (
        view.request_id,
        view.topic,
        view.payload,
        view.reply_to,
        view.sequence,
        view.stream_started_ns,
    )


def event_fields(view: Any) -> tuple[Any, ...]:
    return (
        view.topic,
        view.payload,
        view.timestamp_ns,
        view.reply_to,
        outcome(lambda: view.publisher_instance_id),
        outcome(lambda: view.publisher_sequence),
        outcome(lambda: view.publisher),
        outcome(lambda: view.correlation),
    )


def pub_ack_fields(view: Any) -> tuple[Any, ...]:
    return (view.request_id, view.delivered, view.dropped)


def agree(results: list[tuple[str, Any]], what: str) -> tuple[str, Any]:
    if results[0] != results[1]:
        raise AssertionError(f"{what}: the twins disagree: {results[0]!r} != {results[1]!r}")
    return results[0]


def TestOneInput(data: bytes) -> None:
    kind = agree([outcome(lambda m=m: m.frame_kind(data)) for m in TWINS], "frame_kind")
    publish = agree(
        [outcome(lambda m=m: publish_fields(m.decode_publish(data))) for m in TWINS],
        "decode_publish",
    )
    event = agree(
        [outcome(lambda m=m: event_fields(m.decode_event(data))) for m in TWINS],
        "decode_event",
    )
    pub_ack = agree(
        [outcome(lambda m=m: pub_ack_fields(m.decode_pub_ack(data))) for m in TWINS],
        "decode_pub_ack",
    )
    try:
        frame = frames_pb2.Frame.FromString(data)
    except Exception:
        return  # not a Frame for protobuf: the twins may refuse it or read its hot fields
    body = frame.WhichOneof("body")
    if body == "publish" and kind == ("ok", _wire.FRAME_PUBLISH):
        p = frame.publish
        want = (p.request_id, p.topic, p.payload, p.reply_to, p.sequence, p.stream_started_ns)
        if publish != ("ok", want):
            raise AssertionError(f"decode_publish: {publish!r}, protobuf reads {want!r}")
    elif body == "pub_ack" and kind == ("ok", _wire.FRAME_PUB_ACK):
        a = frame.pub_ack
        if pub_ack != ("ok", (a.request_id, a.delivered, a.dropped)):
            raise AssertionError(f"decode_pub_ack: {pub_ack!r}, protobuf reads {a!r}")
    elif body == "event" and kind == ("ok", _wire.FRAME_EVENT):
        e = frame.event
        if event[0] != "ok" or event[1][:4] != (e.topic, e.payload, e.timestamp_ns, e.reply_to):
            raise AssertionError(f"decode_event: {event!r}, protobuf reads {e!r}")


if __name__ == "__main__":
    fuzz(TestOneInput)
