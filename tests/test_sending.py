"""What a client sends on one connection (``eventbus._sending`` and its compiled twin): an
unconfirmed publish checked, numbered, encoded and queued in one call, what it leaves to
the client, and frames coalesced into one write per loop turn, on both cores."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _streams import Accepted, accepted  # noqa: F401  (a fixture)

from eventbus.errors import FrameTooLarge, InvalidTopic
from eventbus.transport import connect, memory_pair, serve
from eventbus.v1 import frames_pb2

TOPIC = "events.process.lifecycle"
RULES = [("events.process.#", 1), ("events.network.#", 2)]  # publish / subscribe only


def writes(peer: Any) -> int:
    """The writes ``peer`` holds unread: a memory pair keeps one chunk per write."""
    return len(peer._chunks)


def make(core: SimpleNamespace, conn: Any, **options: Any) -> Any:
    table = core.rights.RightsTable(RULES)
    sender = core.sending.Sender(conn, table, core.sending.Sequences(), **options)
    sender.publishing = True
    return sender


def frames(core: SimpleNamespace, data: bytes) -> list[frames_pb2.Publish]:
    bodies = core.framing.FrameSplitter(1 << 20).feed(data)
    return [frames_pb2.Frame.FromString(bytes(body)).publish for body in bodies]


async def test_a_publish_is_the_frame_encode_publish_writes_numbered_in_its_topic(
    core: SimpleNamespace,
) -> None:
    left, right = memory_pair()
    sender = make(core, left)
    assert sender.publish(TOPIC, b"one") == 1  # a memory pair always says drain
    assert sender.publish(TOPIC, bytearray(b"two")) == 1
    assert sender.publish("events.process.other", b"three") == 1
    await asyncio.sleep(0)
    data = await right.read()
    published = frames(core, data)
    assert [(p.topic, p.payload, p.sequence) for p in published] == [
        (TOPIC, b"one", 1),
        (TOPIC, b"two", 2),
        ("events.process.other", b"three", 1),
    ]
    first = published[0]
    assert published[1].stream_started_ns == first.stream_started_ns > 0
    assert data.startswith(
        core.encode.encode_publish(
            TOPIC, b"one", sequence=1, stream_started_ns=first.stream_started_ns
        )
    )
    assert all(p.request_id == 0 and not p.reply_to for p in published)


async def test_the_first_frame_of_a_turn_goes_at_once_the_rest_in_one_write_at_its_end(
    core: SimpleNamespace,
) -> None:
    left, right = memory_pair()
    sender = make(core, left)
    ping = frames_pb2.Frame(ping=frames_pb2.Ping(nonce=3)).SerializeToString()
    sender.publish(TOPIC, b"a")
    assert writes(right) == 1 and sender.queued == 0  # a lone event waits for nothing
    sender.send(len(ping).to_bytes(4, "little") + ping)
    sender.publish(TOPIC, b"b")
    assert writes(right) == 1 and sender.queued > 0
    await asyncio.sleep(0)
    assert writes(right) == 2 and sender.queued == 0
    bodies = core.framing.FrameSplitter(1 << 20).feed(await right.read())
    kinds = [frames_pb2.Frame.FromString(bytes(body)).WhichOneof("body") for body in bodies]
    assert kinds == ["publish", "ping", "publish"]
    sender.publish(TOPIC, b"next turn")  # a new turn: at once again
    assert writes(right) == 1


async def test_past_write_at_the_queue_is_written_at_once(core: SimpleNamespace) -> None:
    left, right = memory_pair()
    sender = make(core, left, write_at=200)
    sender.publish(TOPIC, b"first")
    sender.publish(TOPIC, bytes(100))
    assert writes(right) == 1
    sender.publish(TOPIC, bytes(100))
    assert writes(right) == 2 and sender.queued == 0
    await asyncio.sleep(0)
    assert writes(right) == 2  # nothing was left for the end of the turn


async def test_a_bytearray_is_taken_as_it_was_when_published(core: SimpleNamespace) -> None:
    left, right = memory_pair()
    sender = make(core, left)
    sender.publish(TOPIC, b"first")  # written at once: the next one waits in the queue
    payload = bytearray(b"before")
    sender.publish(TOPIC, payload)
    assert sender.queued > 0
    payload[:] = b"after!"
    sender.write_out()
    assert [p.payload for p in frames(core, await right.read())] == [b"first", b"before"]


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("$SYS.broker.stats", b""),  # reserved: the client's own rules
        ("events.network.flow", b""),  # subscribe only
        ("events.file.write", b""),  # no rule
        ("$INBOX.7.1", b""),  # a reply: the client knows its inboxes
        ("", b""),  # invalid: the client raises
        (TOPIC, memoryview(b"x")),  # other payloads: the client converts them
        (TOPIC, "text"),
        (b"events.process.x", b""),
    ],
)
async def test_what_needs_more_than_the_rights_table_is_left_to_the_client(
    core: SimpleNamespace, topic: Any, payload: Any
) -> None:
    left, right = memory_pair()
    sender = make(core, left)
    assert sender.publish(topic, payload) == -1
    assert left.write_buffer_size() == 0
    sender.publish(TOPIC, b"")  # nothing was numbered for the one left over
    sender.write_out()
    assert [p.sequence for p in frames(core, await right.read())] == [1]


async def test_a_sender_not_publishing_takes_nothing(core: SimpleNamespace) -> None:
    left, _right = memory_pair()
    sender = make(core, left)
    sender.publishing = False
    assert sender.publish(TOPIC, b"x") == -1
    assert sender.queued == 0 and left.write_buffer_size() == 0


async def test_an_invalid_topic_raises_and_a_frame_over_the_limit_too(
    core: SimpleNamespace,
) -> None:
    left, right = memory_pair()
    sender = make(core, left, max_frame=64)
    with pytest.raises(InvalidTopic):
        sender.publish("events.process..x", b"")
    with pytest.raises(InvalidTopic):
        sender.publish("events.process.#", b"")
    with pytest.raises(FrameTooLarge, match="exceeds the maximum of 64 bytes"):
        sender.publish(TOPIC, bytes(64))
    assert left.write_buffer_size() == 0
    sender.publish(TOPIC, b"fits")
    sender.write_out()
    assert [p.payload for p in frames(core, await right.read())] == [b"fits"]


async def test_discard_drops_what_was_queued_and_stops_publishing(core: SimpleNamespace) -> None:
    left, right = memory_pair()
    sender = make(core, left)
    sender.publish(TOPIC, b"sent")
    sender.publish(TOPIC, b"lost")
    sender.discard()
    assert sender.queued == 0 and not sender.publishing
    await asyncio.sleep(0)
    assert [p.payload for p in frames(core, await right.read())] == [b"sent"]
    assert sender.publish(TOPIC, b"x") == -1


def test_sequences_number_each_topic_from_one_and_keep_its_start(core: SimpleNamespace) -> None:
    sequences = core.sending.Sequences()
    first, started = sequences.next("a")
    assert (first, sequences.next("a")) == (1, (2, started))
    assert sequences.next("b")[0] == 1
    assert sequences.next("a") == (3, started)


# -- over a real socket ------------------------------------------------------------------------


@pytest.fixture
def sock_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="eb-send-", dir="/tmp") as directory:
        yield str(Path(directory) / "eventbus.sock")


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")
async def test_over_a_socket_a_publisher_is_told_to_drain_only_when_the_peer_lags(
    core: SimpleNamespace,
    sock_path: str,
    accepted: Accepted,  # noqa: F811
) -> None:
    async with await serve(sock_path, accepted):
        client = await connect(sock_path)
        server_side = await accepted.next()
        server_side.pause_reading()
        sender = make(core, client, write_at=1)  # every publish written at once
        assert sender.publish(TOPIC, b"x") == 0
        told = 0
        for _ in range(100_000):  # until the socket and the transport's buffer are full
            told = sender.publish(TOPIC, bytes(1024))
            if told:
                break
        assert told == 1
        client.abort()
        await client.wait_closed()
