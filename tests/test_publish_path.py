"""The broker's publish path in the core (``eventbus._publish`` and its compiled twin):
what it routes itself and what it leaves to the broker's handler, on both cores."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from eventbus.v1 import frames_pb2

PUBLISHER = frames_pb2.ProcessIdentity(pid=42, principal="procmond", instance_id=9)


def connection(core: SimpleNamespace, limit: int = 1 << 20) -> tuple[Any, list[bytes]]:
    writes: list[bytes] = []
    box = core.outbox.Outbox(writes.append, lambda: 0, limit, [])
    return box, writes


def setup(core: SimpleNamespace, **limits: int) -> SimpleNamespace:
    rules = [("events.#", core.rights.PUBLISH), ("$SYS.#", core.rights.PUBLISH)]
    rights = core.rights.RightsTable(rules, **limits)
    trie = core.trie.TopicTrie(**limits)
    publisher, _ = connection(core)
    publisher.instance_id = PUBLISHER.instance_id
    publisher.publisher_field = PUBLISHER.SerializeToString()
    subscriber, writes = connection(core)
    trie.add("events.#", subscriber)
    return SimpleNamespace(
        rights=rights, trie=trie, publisher=publisher, subscriber=subscriber, writes=writes
    )


def publish(core: SimpleNamespace, topic: str, **fields: Any) -> Any:
    frame = core.encode.encode_publish(topic, b"data", **fields)
    return core.wire.decode_publish(frame[4:])


def route(core: SimpleNamespace, bus: SimpleNamespace, view: Any) -> Any:
    return core.publish.route_publish(bus.publisher, bus.rights, bus.trie, view)


def test_an_allowed_publish_is_encoded_once_and_delivered(core: SimpleNamespace) -> None:
    bus = setup(core)
    view = publish(core, "events.a", sequence=3, stream_started_ns=11)
    assert route(core, bus, view) == (1, 0)
    bus.subscriber.flush()
    (data,) = bus.writes
    event = frames_pb2.Frame.FromString(data[4:]).event
    assert (event.topic, event.payload, event.reply_to) == ("events.a", b"data", "")
    want = frames_pb2.ProcessIdentity()
    want.CopyFrom(PUBLISHER)
    want.sequence, want.stream_started_ns = 3, 11
    assert event.publisher == want
    assert event.timestamp_ns > 0


def test_a_drop_is_counted_against_the_stream(core: SimpleNamespace) -> None:
    bus = setup(core)
    full, _ = connection(core, limit=0)
    bus.trie.add("events.#", full)
    assert route(core, bus, publish(core, "events.a", sequence=5)) == (1, 1)
    assert full.dropped_streams == {(PUBLISHER.instance_id, "events.a"): 1}
    assert route(core, bus, publish(core, "events.b")) == (1, 1)  # unnumbered: no stream
    assert full.dropped_streams == {(PUBLISHER.instance_id, "events.a"): 1}
    assert full.dropped_total == 2


@pytest.mark.parametrize(
    ("topic", "fields"),
    [
        ("control.x", {}),  # no rule: the handler words the denial
        ("$SYS.x", {}),  # a broker topic, whatever the rules say
        ("$INBOX.3.1", {}),  # an inbox reply: the handler checks the reply grant
        ("events.a", {"reply_to": "$INBOX.1.r"}),  # a request: the handler checks reply_to
        ("events." + "x" * 40, {}),  # invalid under these limits: the handler's error
    ],
)
def test_what_needs_a_decision_is_left_to_the_handler(
    core: SimpleNamespace, topic: str, fields: dict[str, Any]
) -> None:
    bus = setup(core, max_bytes=32)
    assert route(core, bus, publish(core, topic, **fields)) is None
    assert bus.subscriber.queued == 0


# -- the read pass: serve_frames -------------------------------------------------------


class Served(SimpleNamespace):
    """What a read pass did: the frames the broker's handlers got, and the counters."""


def read_pass(core: SimpleNamespace) -> tuple[SimpleNamespace, Any, Served]:
    """A publisher connection whose frames are served as the broker serves them: its
    ``dispatch`` reads a frame and, for a Publish, takes the core's route first, as the
    broker's publish handler does."""

    class Connection(core.outbox.Outbox):  # type: ignore[name-defined,misc]
        messages_in = 0

        def send(self, data: bytes) -> None:
            self.queue(data)

    bus = setup(core)
    writes: list[bytes] = []
    session = Connection(writes.append, lambda: 0, 1 << 20, [])
    session.instance_id = PUBLISHER.instance_id
    session.publisher_field = PUBLISHER.SerializeToString()
    served = Served(others=[], decided=[], writes=writes)
    totals = SimpleNamespace(messages_in=0, messages_out=0, messages_dropped=0)

    def decide(session: Any, view: Any) -> None:
        served.decided.append(view.topic)

    def dispatch(session: Any, body: bytes) -> None:
        frame = frames_pb2.Frame.FromString(body)  # an empty body parses to nothing
        if not body:
            raise ValueError("a frame of length 0")
        session.messages_in += 1
        kind = frame.WhichOneof("body")
        if kind != "publish":
            served.others.append(kind)
            return
        view = core.wire.decode_publish(body)
        counts = core.publish.route_publish(session, bus.rights, bus.trie, view)
        if counts is None:
            decide(session, view)
            return
        totals.messages_in += 1
        totals.messages_out += counts[0]
        totals.messages_dropped += counts[1]
        if view.request_id:
            session.send(core.encode.encode_pub_ack(view.request_id, *counts))

    def serve(bodies: list[bytes]) -> None:
        core.publish.serve_frames(session, bodies, bus.rights, bus.trie, dispatch, decide, totals)

    served.serve, served.totals, served.session = serve, totals, session
    return bus, session, served


def body(frame: bytes) -> bytes:
    return frame[4:]


def received(core: SimpleNamespace, writes: list[bytes]) -> list[frames_pb2.Frame]:
    """The frames a connection's writes carried (a flush writes them as one)."""
    bodies = core.framing.FrameSplitter(1 << 20).feed(b"".join(writes))
    return [frames_pb2.Frame.FromString(bytes(b)) for b in bodies]


def test_a_read_pass_serves_every_frame_in_order(core: SimpleNamespace) -> None:
    bus, session, served = read_pass(core)
    ping = frames_pb2.Frame(ping=frames_pb2.Ping(nonce=3)).SerializeToString()
    served.serve(
        [
            body(core.encode.encode_publish("events.a", b"1", sequence=1)),
            ping,
            body(core.encode.encode_publish("control.x", b"no")),  # denied: decided
            body(core.encode.encode_publish("events.b", b"2", sequence=2, request_id=8)),
        ]
    )
    assert served.others == ["ping"]
    assert served.decided == ["control.x"]
    assert session.messages_in == 4
    totals = served.totals
    assert (totals.messages_in, totals.messages_out, totals.messages_dropped) == (2, 2, 0)
    bus.subscriber.flush()
    events = [frame.event for frame in received(core, bus.writes)]
    assert [(e.topic, e.payload, e.publisher.sequence) for e in events] == [
        ("events.a", b"1", 1),
        ("events.b", b"2", 2),
    ]
    session.flush()
    (ack,) = [frame.pub_ack for frame in received(core, served.writes)]
    assert (ack.request_id, ack.delivered, ack.dropped) == (8, 1, 0)


def test_what_a_handler_raises_ends_the_pass_with_what_came_before_counted(
    core: SimpleNamespace,
) -> None:
    bus, session, served = read_pass(core)
    with pytest.raises(ValueError, match="length 0"):
        served.serve(
            [
                body(core.encode.encode_publish("events.a", b"1", sequence=1)),
                b"",
                body(core.encode.encode_publish("events.a", b"2", sequence=2)),
            ]
        )
    assert (served.totals.messages_in, served.totals.messages_out) == (1, 1)
    assert session.messages_in == 1
    bus.subscriber.flush()
    # the frame after the failing one was not served
    assert [f.event.payload for f in received(core, bus.writes)] == [b"1"]
