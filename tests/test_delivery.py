"""A client's read pass (``eventbus._delivery`` and its compiled twin): what reaches each
subscription's queue, when a pass stops for a full one, and which events are gap-checked,
on both cores."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from _differential import PROPERTY
from hypothesis import given
from hypothesis import strategies as st

from eventbus.errors import ProtocolError
from eventbus.v1 import frames_pb2

INBOX = "$INBOX."
IDENTITY = frames_pb2.ProcessIdentity(pid=42, principal="procmond", instance_id=7)


def event(core: SimpleNamespace, topic: str, sequence: int = 0, **fields: Any) -> bytes:
    """The body of an Event frame, as the broker encodes it."""
    frame = core.encode.encode_event(
        topic,
        fields.get("payload", topic.encode()),
        fields.get("timestamp_ns", 1),
        fields.get("publisher", IDENTITY).SerializeToString(),
        correlation=fields.get("correlation", b""),
        reply_to=fields.get("reply_to", ""),
        sequence=sequence,
        stream_started_ns=5 if sequence else 0,
    )
    (body,) = core.framing.FrameSplitter(1 << 20).feed(frame)
    return bytes(body)


def pong(nonce: int) -> bytes:
    return frames_pb2.Frame(pong=frames_pb2.Pong(nonce=nonce)).SerializeToString()


class Pass:
    """A Delivery with recording callbacks, its trie and its mailboxes."""

    def __init__(self, core: SimpleNamespace) -> None:
        self.core = core

        class Envelope(core.wire.EventView):  # type: ignore[misc, name-defined]
            __slots__ = ()

        self.envelope = Envelope
        self.trie = core.trie.TopicTrie()
        self.seen: dict[tuple[int, str], int] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.delivery = core.delivery.Delivery(
            Envelope, self.seen, self.handle, self.inbox, self.gap, INBOX
        )

    def handle(self, body: bytes) -> None:
        frame = frames_pb2.Frame.FromString(body)
        if frame.pong.nonce == 666:
            raise RuntimeError("handler failed")
        self.calls.append(("handle", frame.pong.nonce))

    def inbox(self, envelope: Any) -> None:
        self.calls.append(("inbox", envelope.topic))

    def gap(self, envelope: Any, instance_id: int, sequence: int, topic: str) -> None:
        self.calls.append(("gap", instance_id, sequence, topic))
        self.seen.pop((instance_id, topic), None)
        self.seen[(instance_id, topic)] = sequence

    def box(self, topic_filter: str, max_pending: int = 100, group: str = "") -> Any:
        box = self.core.delivery.Mailbox(max_pending, group)
        self.trie.add(topic_filter, box)
        return box

    def run(self, bodies: list[bytes], start: int = 0) -> Any:
        return self.delivery.run(bodies, start, self.trie)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def topics_of(box: Any) -> list[str]:
    return [envelope.topic for envelope in box._queue]


def test_each_event_reaches_every_matching_mailbox_in_order(core: SimpleNamespace) -> None:
    run = Pass(core)
    everything, process, network = run.box("events.#"), run.box("events.process.+"), run.box("x")
    bodies = [event(core, t) for t in ("events.process.a", "events.net.b", "events.process.c")]
    assert run.run(bodies) is None
    assert topics_of(everything) == ["events.process.a", "events.net.b", "events.process.c"]
    assert topics_of(process) == ["events.process.a", "events.process.c"]
    assert topics_of(network) == []
    # One envelope per event, shared by the mailboxes it reached.
    assert everything._queue[0] is process._queue[0]


def test_an_envelope_carries_the_event_and_is_of_the_clients_class(core: SimpleNamespace) -> None:
    run = Pass(core)
    box = run.box("a.b")
    correlation = frames_pb2.CorrelationMetadata(correlation_id="c-1", sequence=3)
    body = event(
        core,
        "a.b",
        sequence=9,
        payload=b"\x00payload",
        timestamp_ns=123,
        reply_to="$INBOX.4.1",
        correlation=correlation.SerializeToString(),
    )
    run.run([body])
    (envelope,) = box._queue
    assert type(envelope) is run.envelope
    assert (envelope.topic, envelope.payload) == ("a.b", b"\x00payload")
    assert (envelope.timestamp_ns, envelope.reply_to) == (123, "$INBOX.4.1")
    assert envelope.publisher.principal == "procmond"
    assert (envelope.publisher.instance_id, envelope.publisher.sequence) == (7, 9)
    assert envelope.correlation == correlation
    assert (envelope.publisher_instance_id, envelope.publisher_sequence) == (7, 9)


def test_the_reader_is_woken_once_when_the_pass_ends(
    core: SimpleNamespace, loop: asyncio.AbstractEventLoop
) -> None:
    run = Pass(core)
    box = run.box("a")
    box._waiter = waiter = loop.create_future()
    assert run.run([event(core, "a"), event(core, "a")]) is None
    assert waiter.done() and len(box._queue) == 2
    idle = run.box("b")
    idle._waiter = untouched = loop.create_future()
    run.run([event(core, "a")])
    assert not untouched.done()


def test_a_full_mailbox_stops_the_pass_at_its_event(core: SimpleNamespace) -> None:
    run = Pass(core)
    small, large = run.box("a", max_pending=2), run.box("#")
    small._queue.append("taken before")
    bodies = [event(core, "a"), event(core, "a"), event(core, "b")]
    index, envelope, full = run.run(bodies)
    assert (index, envelope.topic, full) == (1, "a", [small])
    # The mailbox with room took the blocked event; nothing after it was delivered.
    assert topics_of(large) == ["a", "a"]
    assert len(small._queue) == 2
    small._queue.clear()
    small._queue.append(envelope)  # as the client does once there is room
    assert run.run(bodies, index + 1) is None
    assert topics_of(large) == ["a", "a", "b"]


def test_a_reader_awaiting_room_is_woken_once_half_the_mailbox_is_free(
    core: SimpleNamespace, loop: asyncio.AbstractEventLoop
) -> None:
    run = Pass(core)
    box = run.box("a", max_pending=4)
    assert run.run([event(core, "a")] * 5)[0] == 4  # the fifth waits for room

    async def take() -> str:
        return (await box.__anext__()).topic  # type: ignore[no-any-return]

    box._space = space = loop.create_future()
    assert loop.run_until_complete(take()) == "a"
    assert not space.done()  # 3 of 4 left: not yet
    assert loop.run_until_complete(take()) == "a"
    assert space.done()  # 2 of 4: reading resumes for a half-queue
    box._space = None
    assert len(box._queue) == 2


def test_a_mailbox_that_ended_takes_everything(core: SimpleNamespace) -> None:
    run = Pass(core)
    box = run.box("a", max_pending=1)
    box._ended = True
    assert run.run([event(core, "a")] * 3) is None
    assert len(box._queue) == 3


def test_replies_go_to_the_inbox_callback_not_the_subscriptions(core: SimpleNamespace) -> None:
    run = Pass(core)
    box = run.box("#")
    dollar = run.box("$INBOX.#")
    assert run.run([event(core, "$INBOX.3.1"), event(core, "a")]) is None
    assert run.calls == [("inbox", "$INBOX.3.1")]
    assert topics_of(box) == ["a"] and topics_of(dollar) == []


def test_other_frames_go_to_the_handler_in_their_place(core: SimpleNamespace) -> None:
    run = Pass(core)
    box = run.box("a")
    assert run.run([pong(1), event(core, "a"), pong(2)]) is None
    assert run.calls == [("handle", 1), ("handle", 2)]
    assert len(box._queue) == 1


def test_what_came_before_a_failure_is_delivered(core: SimpleNamespace) -> None:
    run = Pass(core)
    box = run.box("a")
    with pytest.raises(RuntimeError, match="handler failed"):
        run.run([event(core, "a"), pong(666), event(core, "a")])
    assert len(box._queue) == 1
    box._queue.clear()
    truncated = event(core, "a", payload=b"x" * 10)[:-3]
    with pytest.raises(ProtocolError):
        run.run([event(core, "a"), truncated, event(core, "a")])
    assert len(box._queue) == 1


def test_consecutive_sequences_need_no_gap_check(core: SimpleNamespace) -> None:
    run = Pass(core)
    run.box("#")
    run.run([event(core, "a", 1), event(core, "b", 1), event(core, "a", 2), event(core, "a", 3)])
    # The first of each stream, and only it, is handed to the gap rule.
    assert run.calls == [("gap", 7, 1, "a"), ("gap", 7, 1, "b")]
    assert list(run.seen.items()) == [((7, "b"), 1), ((7, "a"), 3)]  # in order of use
    run.run([event(core, "a", 5)])
    assert run.calls[-1] == ("gap", 7, 5, "a")


def test_only_numbered_events_of_plain_subscriptions_are_checked(core: SimpleNamespace) -> None:
    run = Pass(core)
    run.box("g.#", group="workers")
    run.box("p.#")
    anonymous = frames_pb2.ProcessIdentity(pid=1)  # no instance id: not numbered
    run.run([event(core, "g.x", 4), event(core, "p.x"), event(core, "p.y", 2, publisher=anonymous)])
    assert run.calls == [] and run.seen == {}


def test_the_envelope_class_must_be_an_event_view(core: SimpleNamespace) -> None:
    with pytest.raises(TypeError):
        core.delivery.Delivery(object, {}, print, print, print, INBOX)


# --- both cores agree ---------------------------------------------------------------------

_STEP = st.one_of(
    st.tuples(
        st.just("event"),
        st.sampled_from(["a.x", "a.y", "b.x", "$INBOX.1.1"]),
        st.integers(0, 4),  # sequence (0: none)
    ),
    st.tuples(st.just("pong"), st.integers(1, 3), st.just(0)),
)


def _replay(core: SimpleNamespace, steps: list[tuple[str, Any, int]], limits: list[int]) -> Any:
    """Deliver ``steps`` through mailboxes of ``limits``, making room whenever one is full,
    and describe everything that happened."""
    run = Pass(core)
    boxes = [
        run.box(topic_filter, limit, group)
        for (topic_filter, group), limit in zip(
            [("a.#", ""), ("#", ""), ("+.x", "g")], limits, strict=True
        )
    ]
    bodies = [event(core, a, b) if kind == "event" else pong(a) for kind, a, b in steps]
    taken: list[list[str]] = [[] for _ in boxes]
    start = 0
    while True:
        blocked = run.run(bodies, start)
        for box, seen in zip(boxes, taken, strict=True):
            seen.extend(topics_of(box))
            box._queue.clear()
        if blocked is None:
            break
        index, envelope, full = blocked
        run.calls.append(("blocked", index, [boxes.index(box) for box in full]))
        for box in full:
            box._queue.append(envelope)
        start = index + 1
    return taken, run.calls, list(run.seen.items())


@PROPERTY
@given(
    steps=st.lists(_STEP, max_size=30),
    limits=st.lists(st.integers(1, 4), min_size=3, max_size=3),
)
def test_both_cores_deliver_the_same(
    both_cores: list[SimpleNamespace], steps: list[tuple[str, Any, int]], limits: list[int]
) -> None:
    results = [_replay(core, steps, limits) for core in both_cores]
    assert all(result == results[0] for result in results)


def test_a_bare_mailbox_iterates_over_what_is_queued(
    core: SimpleNamespace, loop: asyncio.AbstractEventLoop
) -> None:
    run = Pass(core)
    box = run.box("#")
    run.run([event(core, "a"), event(core, "b")])

    async def take() -> list[str]:
        return [envelope.topic async for envelope in box]

    assert loop.run_until_complete(take()) == ["a", "b"]
