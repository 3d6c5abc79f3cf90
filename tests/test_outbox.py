"""A connection's outbound side (``eventbus._outbox`` and its compiled twin): what is
queued, written, dropped and reported, on both cores."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from eventbus.v1 import frames_pb2


def outbox(core: SimpleNamespace, limit: int = 100, buffered: int = 0) -> Any:
    """An outbox whose transport records each write and holds ``state.buffered`` bytes."""
    state = SimpleNamespace(buffered=buffered, writes=[], dirty=[], drops=0)

    class Box(core.outbox.Outbox):  # type: ignore[misc, name-defined]
        def dropped(self) -> None:
            state.drops += 1

    box = Box(state.writes.append, lambda: state.buffered, limit, state.dirty)
    return box, state


def test_events_are_queued_and_written_once_per_flush(core: SimpleNamespace) -> None:
    box, state = outbox(core)
    assert box.deliver(b"aa", (1, "t")) and box.deliver(b"bbb")
    assert state.dirty == [box]  # listed once, at the first frame
    assert (box.queued, box.messages_out, box.bytes_out) == (5, 2, 5)
    assert state.writes == []
    box.flush()
    assert state.writes == [b"aabbb"]
    assert box.queued == 0
    box.flush()
    assert state.writes == [b"aabbb"]


def test_what_the_transport_holds_counts_against_the_limit(core: SimpleNamespace) -> None:
    box, state = outbox(core, limit=10, buffered=8)
    assert box.queued == 8
    assert not box.deliver(b"xyz", (7, "a.b"))
    assert (box.dropped_pending, box.dropped_total, box.dropped_streams) == (1, 1, {(7, "a.b"): 1})
    assert state.drops == 1
    assert box.deliver(b"xy")  # exactly at the limit


def test_the_drop_report_goes_ahead_of_the_next_event(core: SimpleNamespace) -> None:
    box, state = outbox(core, limit=4)
    assert not box.deliver(b"12345", (1, "t"))
    assert not box.deliver(b"12345", (1, "t"))
    assert box.dropped_streams == {(1, "t"): 2}
    assert box.deliver(b"ok")
    assert (box.dropped_pending, box.dropped_streams, box.dropped_total) == (0, {}, 2)
    box.flush()
    (written,) = state.writes
    assert written.endswith(b"ok")
    report = frames_pb2.Frame.FromString(written[4:-2]).dropped
    assert (report.count, report.total) == (2, 2)
    assert [(s.instance_id, s.topic, s.count) for s in report.streams] == [(1, "t", 2)]


def test_a_shed_connection_drops_until_a_quarter_of_its_limit(core: SimpleNamespace) -> None:
    box, state = outbox(core, limit=100, buffered=30)
    box.shedding = True
    assert not box.deliver(b"e")
    state.buffered = 25
    assert box.deliver(b"e")
    assert not box.shedding


def test_a_long_pass_writes_out_past_the_flush_size(core: SimpleNamespace) -> None:
    box, state = outbox(core, limit=1 << 20)
    chunk = bytes(core.outbox.FLUSH_AT)
    assert box.deliver(chunk)
    assert state.writes == []
    assert box.deliver(b"next")
    assert state.writes == [chunk]


def test_queue_ignores_the_limit_and_closed_takes_nothing(core: SimpleNamespace) -> None:
    box, _ = outbox(core, limit=1)
    box.queue(b"answer")
    assert box.queued == 6
    box.closed = True
    assert not box.deliver(b"e")
    assert box.dropped_total == 0  # closing is not a loss


def test_streams_itemised_are_bounded(core: SimpleNamespace) -> None:
    box, _ = outbox(core, limit=0)
    cap = core.outbox.MAX_DROPPED_STREAMS
    for n in range(cap + 5):
        box.deliver(b"e", (n, "t"))
    assert len(box.dropped_streams) == cap
    assert box.dropped_total == cap + 5


class Member:
    pass


def test_fan_out_delivers_once_per_connection(core: SimpleNamespace) -> None:
    a, sa = outbox(core)
    b, sb = outbox(core)
    full, _ = outbox(core, limit=0)
    gone, _ = outbox(core)
    gone.closed = True
    replies: list[Any] = []
    for box in (a, b, full):
        box.allow_reply = lambda inbox, box=box: replies.append((box, inbox))

    class Group:
        def __init__(self, member: Any) -> None:
            self.member = member

        def pick(self) -> Any:
            return self.member

    groups = (Group(a), Group(b), Group(b))
    assert core.outbox.fan_out((a, full, gone), groups, b"ev", "$INBOX.1.x", (1, "t")) == (2, 1)
    a.flush()
    b.flush()
    assert sa.writes == [b"ev"] and sb.writes == [b"ev"]
    assert replies == [(a, "$INBOX.1.x"), (b, "$INBOX.1.x")]
    assert core.outbox.fan_out((), (), b"ev", "", None) == (0, 0)


def test_fan_out_takes_only_outboxes(core: SimpleNamespace) -> None:
    if core.name == "python":
        pytest.skip("the reference takes any object with the same methods")
    with pytest.raises(TypeError):
        core.outbox.fan_out((Member(),), (), b"ev", "", None)


def test_write_out_flushes_each_listed_outbox_once_and_empties_the_list(
    core: SimpleNamespace,
) -> None:
    dirty: list[Any] = []
    writes: list[tuple[str, bytes]] = []
    held = {"a": 0, "b": 0}

    def box(name: str, write: Any = None) -> Any:
        return core.outbox.Outbox(
            write or (lambda data: writes.append((name, data))), lambda: held[name], 100, dirty
        )

    b = box("b")

    def write_a(data: bytes) -> None:  # a's write makes b due within the same write-out
        writes.append(("a", data))
        b.deliver(b"late")

    a = box("a", write_a)
    assert core.outbox.write_out(dirty, True) is None  # nothing listed: nothing to do
    a.deliver(b"x" * 40)
    assert core.outbox.write_out(dirty, True) is None  # 40 of 100: not over half
    assert writes == [("a", b"x" * 40), ("b", b"late")]  # b, listed meanwhile, went too
    assert dirty == []

    held["a"] = 30
    a.deliver(b"y" * 30)  # 30 held by the transport + 30 queued: over half
    b.deliver(b"z")
    assert core.outbox.write_out(dirty, False) is None  # unwatched: nobody is returned
    a.deliver(b"y" * 30)
    b.deliver(b"z")
    assert core.outbox.write_out(dirty, True) == [a]
    assert [name for name, _ in writes] == ["a", "b", "a", "b", "a", "b"]
    assert dirty == []
