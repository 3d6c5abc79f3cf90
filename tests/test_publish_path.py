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
