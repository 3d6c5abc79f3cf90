"""No peer can freeze the bus and no loss goes unnoticed: bounded answers, the shedding
memory budget, pipelined Hello, zero-length frames, quotas and gap detection.

The broker runs in the test's event loop; misbehaving peers are raw sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time

import pytest
from _streams import open_raw, raw_server
from _wait import until

import eventbus
from eventbus import Broker, BrokerConfig, topics
from eventbus.protocol import PROTOCOL_VERSION, encode_frame, encode_publish
from eventbus.v1 import frames_pb2

Frame = frames_pb2.Frame
E = frames_pb2.ErrorCode
DEADLINE = 10.0  # a failure guard, never a wait that success depends on


def hello(principal: str, instance_id: int = 0) -> bytes:
    return encode_frame(
        Frame(
            hello=frames_pb2.Hello(
                protocol_version=PROTOCOL_VERSION, principal=principal, instance_id=instance_id
            )
        )
    )


class Raw:
    """A peer that writes frames by hand and reads only when told to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, address: str) -> Raw:
        return cls(*await open_raw(address))

    async def recv(self) -> frames_pb2.Frame | None:
        """The next frame, or None once the broker has closed the connection."""
        try:
            header = await asyncio.wait_for(self.reader.readexactly(4), DEADLINE)
            (length,) = struct.unpack("<I", header)
            body = await asyncio.wait_for(self.reader.readexactly(length), DEADLINE)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return Frame.FromString(body)

    async def kinds_until_closed(self) -> list[str]:
        kinds = []
        while (frame := await self.recv()) is not None:
            kinds.append(frame.WhichOneof("body") or "")
        return kinds

    def close(self) -> None:
        self.writer.close()


# -- answers are bounded ------------------------------------------------------------------


async def test_a_peer_that_asks_and_never_reads_is_disconnected_as_a_slow_consumer(
    address: str,
) -> None:
    limit = 64 * 1024
    config = BrokerConfig(
        address=address, stats_interval=0, max_outbound_bytes=limit, drain_timeout=0.1
    )
    async with (
        Broker(config) as broker,
        await eventbus.connect(address, principal="agent") as agent,
    ):
        gone = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
        raw = await Raw.open(address)
        raw.writer.write(hello("agent"))
        welcome = await raw.recv()
        assert welcome is not None and welcome.WhichOneof("body") == "welcome"
        subscribe = b"".join(
            encode_frame(Frame(subscribe=frames_pb2.Subscribe(request_id=i, filter="events.#")))
            for i in range(1, 2001)
        )
        listing = encode_frame(Frame(list_request=frames_pb2.ListRequest(request_id=9999)))
        raw.writer.write(subscribe + listing * 200)  # ~40 KiB of answers each, never read
        presence = frames_pb2.ClientPresence.FromString((await gone.get(DEADLINE)).payload)
        assert presence.identity.connection_id == welcome.welcome.connection_id
        assert presence.reason.startswith("slow consumer: unread answers"), presence.reason
        # What the broker held for it stayed within twice the limit (events stop at the
        # limit; answers may take as much again), and is gone with it.
        assert broker.stats().queued_bytes <= 2 * limit
        await until(lambda: broker.clients == 1, "the cut-off")
        raw.close()
        await agent.ping()  # and everyone else is served on


# -- pipelined Hello, zero-length frames, inbox denials ------------------------------------


async def test_frames_pipelined_with_hello_are_answered_without_further_traffic(
    address: str,
) -> None:
    async with Broker(BrokerConfig(address=address, stats_interval=0)):
        raw = await Raw.open(address)
        ping = encode_frame(Frame(ping=frames_pb2.Ping(nonce=5)))
        sub = encode_frame(Frame(subscribe=frames_pb2.Subscribe(request_id=7, filter="events.#")))
        raw.writer.write(hello("agent") + ping + sub)  # one write, then only reading
        kinds = []
        for _ in range(3):
            frame = await raw.recv()
            assert frame is not None
            kinds.append(frame.WhichOneof("body"))
        assert kinds == ["welcome", "pong", "sub_ack"]
        raw.close()


async def test_a_frame_of_length_zero_is_a_protocol_error_and_closes(address: str) -> None:
    async with Broker(BrokerConfig(address=address, stats_interval=0)) as broker:
        raw = await Raw.open(address)
        raw.writer.write(hello("agent"))
        assert await raw.recv() is not None
        raw.writer.write(b"\x00\x00\x00\x00")
        error = await raw.recv()
        assert error is not None and error.WhichOneof("body") == "error"
        assert error.error.code == E.ERROR_CODE_PROTOCOL
        assert "length 0" in error.error.message
        assert await raw.kinds_until_closed() == []
        raw.close()
        await until(lambda: broker.clients == 0, "the close")


async def test_an_inbox_denial_names_the_rule_set(address: str) -> None:
    async with (
        Broker(BrokerConfig(address=address, stats_interval=0)),
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        with pytest.raises(eventbus.PermissionDenied, match="rule set 'embedded default policy'"):
            await proc.publish("$INBOX.999.1", b"unasked", confirm=True)


# -- quotas -------------------------------------------------------------------------------


async def test_a_uid_over_its_connection_quota_is_refused_with_the_reason(address: str) -> None:
    config = BrokerConfig(address=address, stats_interval=0, max_connections_per_uid=2)
    async with Broker(config) as broker:
        first = await eventbus.connect(address, principal="agent", reconnect=False)
        second = await eventbus.connect(address, principal="procmond", reconnect=False)
        with pytest.raises(eventbus.QuotaExceeded, match=r"max_connections_per_uid = 2"):
            await eventbus.connect(address, principal="netmond", reconnect=False)
        await second.close()
        await until(lambda: broker.clients == 1, "the close")
        # A connection given back is a connection to be had again.
        third = await eventbus.connect(address, principal="netmond", reconnect=False)
        await third.close()
        await first.close()


async def test_subscription_quotas_refuse_the_subscription_and_keep_the_connection(
    address: str,
) -> None:
    config = BrokerConfig(
        address=address,
        stats_interval=0,
        max_subscriptions_per_connection=3,
        max_subscriptions_per_uid=5,
    )
    async with (
        Broker(config),
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="agent") as other,
    ):
        subs = [await agent.subscribe(f"events.process.{n}") for n in range(3)]
        with pytest.raises(eventbus.QuotaExceeded, match="max_subscriptions_per_connection = 3"):
            await agent.subscribe("events.process.3")
        await other.subscribe("events.network.#")
        await other.subscribe("events.filesystem.#")
        with pytest.raises(eventbus.QuotaExceeded, match="max_subscriptions_per_uid = 5"):
            await other.subscribe("events.performance.#")
        await subs[0].unsubscribe()
        await other.subscribe("events.performance.#")  # the uid's count went down
        await agent.ping()
        assert agent.connected and other.connected


# -- the memory budget sheds instead of freezing ----------------------------------------------


async def test_stopped_readers_over_the_budget_are_shed_and_a_live_pair_gets_everything(
    address: str,
) -> None:
    config = BrokerConfig(
        address=address,
        stats_interval=0,
        max_outbound_bytes=256 * 1024,
        memory_budget_bytes=512 * 1024,
        budget_pause=0.05,
        heartbeat_interval=3600,  # shedding, not the heartbeat cut-off, must free the bus
    )
    async with (
        Broker(config) as broker,
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        live = await agent.subscribe("events.#")
        stalled = []
        for _ in range(4):  # together twice the budget: they never read
            raw = await Raw.open(address)
            raw.writer.write(hello("agent"))
            assert await raw.recv() is not None
            raw.writer.write(
                encode_frame(Frame(subscribe=frames_pb2.Subscribe(request_id=1, filter="events.#")))
            )
            ack = await raw.recv()
            assert ack is not None and ack.WhichOneof("body") == "sub_ack"
            stalled.append(raw)
        count = 600  # 600 * 8 KiB: more than the stalled peers' limits and socket buffers
        for seq in range(count):
            await proc.publish("events.process.batch", seq.to_bytes(4, "big") + b"b" * 8192)
            envelope = await live.get(DEADLINE)
            assert int.from_bytes(envelope.payload[:4], "big") == seq
        assert agent.dropped == 0 and agent.lost == 0
        assert broker.stats().dropped > 0
        assert not broker.publishers_paused
        for raw in stalled:
            raw.close()


# -- gaps are detectable end to end --------------------------------------------------------


async def test_every_drop_is_reported_ahead_of_the_gap_it_leaves(address: str) -> None:
    config = BrokerConfig(address=address, stats_interval=0, max_outbound_bytes=32 * 1024)
    async with (
        Broker(config),
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        raw = await Raw.open(address)
        raw.writer.write(hello("agent"))
        assert await raw.recv() is not None
        raw.writer.write(
            encode_frame(Frame(subscribe=frames_pb2.Subscribe(request_id=1, filter="events.#")))
        )
        assert await raw.recv() is not None
        total = 400
        for _ in range(total):  # the raw subscriber reads nothing meanwhile
            await proc.publish("events.process.batch", b"d" * 4096, confirm=True)
        await proc.publish("events.process.batch", b"last", confirm=True)
        last = 0
        reported: dict[int, int] = {}  # the count of the Dropped report just before
        while True:
            frame = await raw.recv()
            assert frame is not None
            if frame.WhichOneof("body") == "dropped":
                for stream in frame.dropped.streams:
                    assert (stream.instance_id, stream.topic) == (
                        proc.instance_id,
                        "events.process.batch",
                    )
                    reported[last] = reported.get(last, 0) + stream.count
                assert sum(s.count for s in frame.dropped.streams) == frame.dropped.count
                continue
            assert frame.WhichOneof("body") == "event"
            publisher = frame.event.publisher
            assert publisher.instance_id == proc.instance_id
            gap = publisher.sequence - last - 1
            assert gap == reported.pop(last, 0), f"gap after {last} not reported first"
            last = publisher.sequence
            if frame.event.payload == b"last":
                break
        assert last == total + 1
        assert not reported
        raw.close()


async def test_a_gap_no_report_explains_is_counted_lost_in_transit(address: str) -> None:
    async with (
        Broker(BrokerConfig(address=address, stats_interval=0)),
        await eventbus.connect(
            address, principal="agent", on_lost=lambda who, n: lost.append((who.pid, n))
        ) as agent,
    ):
        lost: list[tuple[int, int]] = []
        sub = await agent.subscribe("events.process.#")
        raw = await Raw.open(address)
        raw.writer.write(hello("procmond", instance_id=42))
        assert await raw.recv() is not None
        # Sequences 3 and 4 of the lifecycle stream never reach the broker.
        for topic, sequence in [
            ("events.process.lifecycle", 1),
            ("events.process.lifecycle", 2),
            ("events.process.tree", 1),
            ("events.process.lifecycle", 5),
            ("events.process.tree", 2),
        ]:
            raw.writer.write(encode_publish(topic, b"", sequence=sequence))
        received = [await sub.get(DEADLINE) for _ in range(5)]
        assert [e.publisher.sequence for e in received] == [1, 2, 1, 5, 2]
        assert all(e.publisher.instance_id == 42 for e in received)
        assert agent.lost == 2 and agent.dropped == 0
        assert lost == [(os.getpid(), 2)]
        raw.close()


async def test_drops_the_broker_reports_are_not_counted_lost(address: str) -> None:
    config = BrokerConfig(address=address, stats_interval=0, max_outbound_bytes=32 * 1024)
    async with (
        Broker(config),
        await eventbus.connect(address, principal="agent", max_pending=1) as slow,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        sub = await slow.subscribe("events.#")
        total = 1500  # ~12 MB: more than the slow side's socket and read buffers hold
        for _ in range(total):
            await proc.publish("events.process.batch", b"s" * 8192, confirm=True)
        await proc.publish("events.process.batch", b"last", confirm=True)
        received = 0
        while (await sub.get(DEADLINE)).payload != b"last":
            received += 1
        assert slow.dropped > 0
        assert slow.lost == 0
        assert received + slow.dropped == total


async def test_what_was_published_while_unsubscribed_is_not_a_loss(address: str) -> None:
    async with (
        Broker(BrokerConfig(address=address, stats_interval=0)),
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        sub = await agent.subscribe("events.process.tree")
        await proc.publish("events.process.tree", b"1", confirm=True)
        assert (await sub.get(DEADLINE)).publisher.sequence == 1
        await sub.unsubscribe()
        await proc.publish("events.process.tree", b"2", confirm=True)
        sub = await agent.subscribe("events.process.tree")
        await proc.publish("events.process.tree", b"3", confirm=True)
        assert (await sub.get(DEADLINE)).publisher.sequence == 3
        assert agent.lost == 0


async def test_group_members_see_gaps_by_design_and_count_no_loss(address: str) -> None:
    async with (
        Broker(BrokerConfig(address=address, stats_interval=0)),
        await eventbus.connect(address, principal="procmond") as a,
        await eventbus.connect(address, principal="procmond") as b,
        await eventbus.connect(address, principal="agent") as agent,
    ):
        subs = [
            await c.subscribe("control.collector.task.process", group="workers") for c in (a, b)
        ]
        for n in range(6):
            await agent.publish("control.collector.task.process", bytes([n]), confirm=True)
        got = [(await s.get(DEADLINE)).publisher.sequence for s in subs for _ in range(3)]
        assert sorted(got) == [1, 2, 3, 4, 5, 6]
        assert a.lost == b.lost == 0


# -- close() cannot hang ------------------------------------------------------------------


async def test_close_returns_when_the_broker_stops_reading(address: str) -> None:
    """A peer that answers Hello and then never reads again cannot make close() wait."""
    welcome = encode_frame(
        Frame(
            welcome=frames_pb2.Welcome(
                protocol_version=PROTOCOL_VERSION,
                rights=frames_pb2.Rights(publish=["events.#"]),
                limits=frames_pb2.Limits(
                    max_frame_bytes=16 << 20, max_topic_bytes=256, max_topic_levels=16
                ),
            )
        )
    )
    peers: list[asyncio.StreamWriter] = []

    async def answer_then_stop_reading(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readexactly(4)
        writer.write(welcome)
        transport = writer.transport
        assert isinstance(transport, asyncio.ReadTransport)
        transport.pause_reading()
        peers.append(writer)

    async with raw_server(answer_then_stop_reading, address):
        try:
            client = await eventbus.connect(
                address, principal="agent", timeout=0.5, reconnect=False
            )
            flood = asyncio.create_task(client.publish("events.process.batch", b"f" * (4 << 20)))
            await until(lambda: client._link.conn.write_buffer_size() > 0, "the write backlog")
            await asyncio.wait_for(client.close(), DEADLINE)
            flood.cancel()
            with contextlib.suppress(asyncio.CancelledError, eventbus.EventBusError):
                await flood
        finally:
            for writer in peers:
                writer.close()


async def test_a_stopped_reader_is_cut_off_by_its_heartbeat_while_the_budget_pauses(
    address: str,
) -> None:
    config = BrokerConfig(
        address=address,
        stats_interval=0,
        max_outbound_bytes=1 << 20,
        memory_budget_bytes=128 * 1024,
        budget_pause=0.1,
        heartbeat_interval=0.5,
        drain_timeout=0.1,
    )
    async with (
        Broker(config) as broker,
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        gone = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
        raw = await Raw.open(address)
        raw.writer.write(hello("agent"))
        welcome = await raw.recv()
        assert welcome is not None
        raw.writer.write(
            encode_frame(Frame(subscribe=frames_pb2.Subscribe(request_id=1, filter="events.#")))
        )
        assert await raw.recv() is not None

        async def flood() -> None:  # until the stopped reader is gone
            while broker.clients > 2:
                await proc.publish("events.process.batch", b"h" * 8192)

        flooding = asyncio.create_task(flood())
        while True:
            presence = frames_pb2.ClientPresence.FromString((await gone.get(DEADLINE)).payload)
            if presence.identity.connection_id == welcome.welcome.connection_id:
                break
        await asyncio.wait_for(flooding, DEADLINE)
        assert "3 heartbeat intervals" in presence.reason, presence.reason
        raw.close()


async def test_the_head_of_a_stream_that_began_after_the_subscription_is_due(
    address: str,
) -> None:
    async with (
        Broker(BrokerConfig(address=address, stats_interval=0)),
        await eventbus.connect(address, principal="agent") as agent,
    ):
        sub = await agent.subscribe("events.process.#")
        raw = await Raw.open(address)
        raw.writer.write(hello("procmond", instance_id=7))
        assert await raw.recv() is not None
        began_before = 1  # long before the subscription: a late subscriber's baseline
        began_after = time.monotonic_ns()  # after it: sequences 1 and 2 were due here
        raw.writer.write(
            encode_publish("events.process.tree", b"", sequence=5, stream_started_ns=began_before)
            + encode_publish("events.process.batch", b"", sequence=3, stream_started_ns=began_after)
        )
        first, second = [await sub.get(DEADLINE) for _ in range(2)]
        assert (first.publisher.sequence, second.publisher.sequence) == (5, 3)
        assert second.publisher.stream_started_ns == began_after
        assert agent.lost == 2
        raw.close()


async def test_a_slow_subscriber_that_still_asks_keeps_its_connection(address: str) -> None:
    """Under the drop policy a full subscriber loses events, each reported; its answers
    still reach it: they push events out, they do not end the connection."""
    # The raw peer never pings while 6,000 confirmed publishes go by, however long they take
    # on a slow machine: heartbeats are not what this tests.
    config = BrokerConfig(
        address=address,
        stats_interval=0,
        max_outbound_bytes=64 * 1024,
        heartbeat_interval=3600,
    )
    async with (
        Broker(config) as broker,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        raw = await Raw.open(address)
        raw.writer.write(hello("agent"))
        assert await raw.recv() is not None
        filters = ["events.#"] + [f"events.process.filter-{n}" for n in range(40)]
        for n, topic_filter in enumerate(filters, 1):
            raw.writer.write(
                encode_frame(
                    Frame(subscribe=frames_pb2.Subscribe(request_id=n, filter=topic_filter))
                )
            )
            assert await raw.recv() is not None
        # Small events fill its buffer to within one event of the limit, far more than its
        # socket holds; then it asks for a listing (its 41 subscriptions) larger than that.
        dropped = 0
        for _ in range(6000):
            ack = await proc.publish("events.process.batch", b"p" * 64, confirm=True)
            dropped += ack == 0
        assert dropped > 0
        listing = Frame(list_request=frames_pb2.ListRequest(request_id=77))
        raw.writer.write(encode_frame(listing))
        kinds: list[str | None] = []
        # The drop report comes ahead of the next event, or once the buffer has drained.
        while "list_reply" not in kinds or "dropped" not in kinds:
            frame = await raw.recv()
            assert frame is not None, f"closed after {kinds[-3:]}"
            kinds.append(frame.WhichOneof("body"))
        assert "error" not in kinds
        assert broker.clients == 2
        raw.close()
