"""Broker behaviour over real sockets: protocol robustness, flow control, groups, liveness.

The broker runs in the test's event loop; clients are raw sockets (to send what a
well-behaved client never would) or the real client.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator

import pytest
from _streams import open_raw
from _wait import until

import eventbus
from eventbus import Broker, BrokerConfig, topics
from eventbus.protocol import PROTOCOL_VERSION, encode_frame
from eventbus.v1 import frames_pb2

Frame = frames_pb2.Frame
E = frames_pb2.ErrorCode
DEADLINE = 10.0  # a failure guard, never a wait that success depends on


@pytest.fixture
async def broker(address: str) -> AsyncIterator[Broker]:
    async with Broker(BrokerConfig(address=address, stats_interval=0)) as running:
        yield running


class Raw:
    """A client that speaks frames by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, address: str) -> Raw:
        reader, writer = await open_raw(address)
        return cls(reader, writer)

    def send(self, frame: frames_pb2.Frame) -> None:
        self.writer.write(encode_frame(frame))

    def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)

    async def hello(self, principal: str = "procmond") -> frames_pb2.Welcome:
        self.send(
            Frame(hello=frames_pb2.Hello(protocol_version=PROTOCOL_VERSION, principal=principal))
        )
        frame = await self.recv()
        assert frame.WhichOneof("body") == "welcome", frame
        return frame.welcome

    async def recv(self) -> frames_pb2.Frame:
        header = await asyncio.wait_for(self.reader.readexactly(4), DEADLINE)
        (length,) = struct.unpack("<I", header)
        body = await asyncio.wait_for(self.reader.readexactly(length), DEADLINE)
        return Frame.FromString(body)

    async def recv_error(self) -> frames_pb2.Error:
        frame = await self.recv()
        assert frame.WhichOneof("body") == "error", frame
        return frame.error

    async def closed_by_peer(self) -> bool:
        data = await asyncio.wait_for(self.reader.read(), DEADLINE)
        return data == b""

    def close(self) -> None:
        self.writer.close()


async def still_serving(address: str) -> None:
    """Another client can still connect, subscribe, publish and receive."""
    async with (
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        sub = await agent.subscribe("events.process.#")
        assert await proc.publish("events.process.lifecycle", b"ok", confirm=True) == 1
        envelope = await sub.get(timeout=DEADLINE)
        assert envelope.payload == b"ok"


# -- protocol robustness ---------------------------------------------------------------


async def test_garbage_gets_an_error_frame_and_the_broker_serves_on(
    broker: Broker, address: str
) -> None:
    raw = await Raw.open(address)
    raw.send_bytes(struct.pack("<I", 7) + b"\xff\xff\xff\xff\xff\xff\xff")
    error = await raw.recv_error()
    assert error.code == E.ERROR_CODE_PROTOCOL
    assert await raw.closed_by_peer()
    raw.close()
    await still_serving(address)


async def test_garbage_after_hello_closes_only_that_connection(
    broker: Broker, address: str
) -> None:
    async with await eventbus.connect(address, principal="agent") as agent:
        sub = await agent.subscribe("events.#")
        raw = await Raw.open(address)
        await raw.hello()
        raw.send_bytes(struct.pack("<I", 3) + b"\x0a\xff\x01")
        error = await raw.recv_error()
        assert error.code == E.ERROR_CODE_PROTOCOL
        assert "does not parse" in error.message
        assert await raw.closed_by_peer()
        raw.close()
        async with await eventbus.connect(address, principal="procmond") as proc:
            await proc.publish("events.process.tree", b"after")
        assert (await sub.get(timeout=DEADLINE)).payload == b"after"


async def test_length_prefix_of_4_gib_is_refused_at_once(broker: Broker, address: str) -> None:
    raw = await Raw.open(address)
    await raw.hello()
    raw.send_bytes(b"\xff\xff\xff\xff")  # no body follows: the header alone is refused
    error = await raw.recv_error()
    assert error.code == E.ERROR_CODE_FRAME_TOO_LARGE
    assert str(broker.config.max_frame_bytes) in error.message
    assert await raw.closed_by_peer()
    raw.close()
    await still_serving(address)


async def test_oversized_frame_before_hello(broker: Broker, address: str) -> None:
    raw = await Raw.open(address)
    raw.send_bytes(struct.pack("<I", broker.config.max_frame_bytes + 1))
    error = await raw.recv_error()
    assert error.code == E.ERROR_CODE_FRAME_TOO_LARGE
    raw.close()
    await still_serving(address)


async def test_frame_before_hello_is_refused(broker: Broker, address: str) -> None:
    raw = await Raw.open(address)
    raw.send(Frame(subscribe=frames_pb2.Subscribe(request_id=1, filter="events.#")))
    error = await raw.recv_error()
    assert error.code == E.ERROR_CODE_PROTOCOL
    assert "first frame must be Hello" in error.message
    assert await raw.closed_by_peer()
    raw.close()
    await still_serving(address)


async def test_truncated_frame_then_eof_is_reported_and_cleaned_up(
    broker: Broker, address: str
) -> None:
    async with await eventbus.connect(address, principal="agent") as agent:
        gone = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
        raw = await Raw.open(address)
        welcome = await raw.hello()
        frame = encode_frame(
            Frame(subscribe=frames_pb2.Subscribe(request_id=1, filter="control.#"))
        )
        raw.send_bytes(frame[: len(frame) - 3])
        await raw.writer.drain()
        raw.close()
        presence = frames_pb2.ClientPresence.FromString((await gone.get(DEADLINE)).payload)
        assert presence.identity.connection_id == welcome.connection_id
        assert "mid-frame" in presence.reason
    await still_serving(address)


async def test_unknown_fields_and_unknown_frame_kinds_are_tolerated(
    broker: Broker, address: str
) -> None:
    raw = await Raw.open(address)
    await raw.hello()
    # A Ping carrying an unknown field 99 (varint): still a Ping.
    ping = Frame(ping=frames_pb2.Ping(nonce=7)).SerializeToString()
    body = ping[:1] + bytes([ping[1] + 3]) + ping[2:] + b"\x98\x06\x01"
    raw.send_bytes(struct.pack("<I", len(body)) + body)
    pong = await raw.recv()
    assert pong.WhichOneof("body") == "pong" and pong.pong.nonce == 7
    # A frame whose only field is a oneof member this broker does not know (field 200).
    unknown = b"\xc2\x0c\x00"
    raw.send_bytes(struct.pack("<I", len(unknown)) + unknown)
    error = await raw.recv_error()
    assert error.code == E.ERROR_CODE_PROTOCOL
    raw.send(Frame(ping=frames_pb2.Ping(nonce=8)))
    assert (await raw.recv()).pong.nonce == 8  # the connection is still served
    raw.close()


async def test_unsupported_protocol_version(broker: Broker, address: str) -> None:
    raw = await Raw.open(address)
    raw.send(Frame(hello=frames_pb2.Hello(protocol_version=99, principal="agent")))
    error = await raw.recv_error()
    assert error.code == E.ERROR_CODE_UNSUPPORTED_VERSION
    assert "99" in error.message
    raw.close()


async def test_client_only_frames_from_a_client_are_refused(broker: Broker, address: str) -> None:
    raw = await Raw.open(address)
    await raw.hello()
    raw.send(Frame(event=frames_pb2.EventEnvelope(topic="events.process.x")))
    error = await raw.recv_error()
    assert error.code == E.ERROR_CODE_PROTOCOL
    assert await raw.closed_by_peer()
    raw.close()


async def test_hello_deadline(address: str) -> None:
    async with Broker(BrokerConfig(address=address, stats_interval=0, hello_timeout=0.2)):
        raw = await Raw.open(address)
        error = await raw.recv_error()
        assert error.code == E.ERROR_CODE_HELLO_TIMEOUT
        assert await raw.closed_by_peer()
        raw.close()


async def test_silent_connection_is_closed_after_three_heartbeats(address: str) -> None:
    config = BrokerConfig(address=address, stats_interval=0, heartbeat_interval=0.1)
    async with Broker(config):
        raw = await Raw.open(address)
        await raw.hello()
        error = await raw.recv_error()  # the raw client never pings
        assert error.code == E.ERROR_CODE_TIMEOUT
        assert await raw.closed_by_peer()
        raw.close()


async def test_pinging_client_is_kept(address: str) -> None:
    config = BrokerConfig(address=address, stats_interval=0, heartbeat_interval=0.5)
    async with (
        Broker(config) as broker,
        await eventbus.connect(address, principal="agent") as agent,
    ):
        # Longer than the 1.5 s a silent connection is kept, over several housekeeping
        # sweeps; the client's own pings (every 0.5 s, from Welcome) keep it. Only a loop
        # stalled for three whole intervals could fail this.
        for _ in range(8):
            await asyncio.sleep(0.25)
        await agent.ping()
        assert broker.clients == 1
        assert agent.reconnects == 0


# -- requests and answers ----------------------------------------------------------------


async def test_invalid_topic_is_answered_and_the_connection_kept(
    broker: Broker, address: str
) -> None:
    raw = await Raw.open(address)
    await raw.hello()
    raw.send(Frame(publish=frames_pb2.Publish(request_id=5, topic="events..x")))
    error = await raw.recv_error()
    assert error.request_id == 5 and error.code == E.ERROR_CODE_INVALID_TOPIC
    assert "events..x" in error.message
    raw.send(Frame(subscribe=frames_pb2.Subscribe(request_id=6, filter="events.a#")))
    error = await raw.recv_error()
    assert error.request_id == 6 and error.code == E.ERROR_CODE_INVALID_TOPIC
    raw.send(Frame(ping=frames_pb2.Ping(nonce=1)))
    assert (await raw.recv()).WhichOneof("body") == "pong"
    raw.close()


async def test_unknown_subscription_id(broker: Broker, address: str) -> None:
    raw = await Raw.open(address)
    await raw.hello()
    raw.send(Frame(unsubscribe=frames_pb2.Unsubscribe(request_id=3, subscription_id=42)))
    error = await raw.recv_error()
    assert error.request_id == 3 and error.code == E.ERROR_CODE_NOT_FOUND
    raw.close()


async def test_confirmed_publish_counts_connections_not_filters(
    broker: Broker, address: str
) -> None:
    async with (
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        assert await proc.publish("events.process.lifecycle", b"", confirm=True) == 0
        a = await agent.subscribe("events.#")
        b = await agent.subscribe("events.process.+")
        assert await proc.publish("events.process.lifecycle", b"1", confirm=True) == 1
        # One delivery on the wire, routed to both local subscriptions.
        assert (await a.get(DEADLINE)).payload == b"1"
        assert (await b.get(DEADLINE)).payload == b"1"


async def test_request_to_nobody_gets_no_responders(broker: Broker, address: str) -> None:
    async with await eventbus.connect(address, principal="agent") as agent:
        with pytest.raises(eventbus.NoResponders):
            await agent.request(topics.TASK_PROCESS, b"")


async def test_reply_to_must_be_the_requesters_own_inbox(broker: Broker, address: str) -> None:
    raw = await Raw.open(address)
    welcome = await raw.hello("agent")
    other = welcome.connection_id + 1
    raw.send(
        Frame(
            publish=frames_pb2.Publish(
                request_id=1, topic=topics.TASK_PROCESS, reply_to=f"$INBOX.{other}.1"
            )
        )
    )
    error = await raw.recv_error()
    assert error.code == E.ERROR_CODE_PERMISSION_DENIED
    assert "own inbox" in error.message
    raw.send(Frame(subscribe=frames_pb2.Subscribe(request_id=2, filter=f"$INBOX.{other}.+")))
    error = await raw.recv_error()
    assert error.code == E.ERROR_CODE_PERMISSION_DENIED
    raw.close()


async def test_unsubscribe_stops_delivery_and_ends_iteration(broker: Broker, address: str) -> None:
    async with (
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        async with await agent.subscribe("events.process.#") as sub:
            await proc.publish("events.process.tree", b"1", confirm=True)
        assert await proc.publish("events.process.tree", b"2", confirm=True) == 0
        assert [e.payload async for e in sub] == [b"1"]


async def test_a_reader_waiting_in_async_for_sees_the_end(broker: Broker, address: str) -> None:
    async with (
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        sub = await agent.subscribe("events.process.#")

        async def read() -> list[bytes]:
            return [e.payload async for e in sub]

        reader = asyncio.ensure_future(read())
        await proc.publish("events.process.tree", b"1", confirm=True)
        await sub.unsubscribe()  # the reader is waiting, or will find the end when it looks
        assert await asyncio.wait_for(reader, DEADLINE) == [b"1"]


# -- flow control -----------------------------------------------------------------------


async def test_slow_consumer_loses_newest_events_and_is_told_how_many(address: str) -> None:
    # The publisher is held for the slow subscriber only briefly: then the drops begin.
    config = BrokerConfig(
        address=address, stats_interval=0, max_outbound_bytes=64 * 1024, publisher_pause=0.05
    )
    async with Broker(config):
        lost: list[int] = []
        async with (
            await eventbus.connect(
                address, principal="agent", max_pending=1, on_dropped=lost.append
            ) as slow,
            await eventbus.connect(address, principal="agent") as fast,
            await eventbus.connect(address, principal="procmond") as proc,
        ):
            slow_sub = await slow.subscribe("events.#")
            fast_sub = await fast.subscribe("events.#")
            # ~12 MB: more than the slow side's socket and read buffers hold.
            payload = b"x" * 8192
            total = 1500
            delivered = dropped = 0
            for seq in range(total):
                ack = await proc.publish(
                    "events.process.metadata", seq.to_bytes(4, "big") + payload, confirm=True
                )
                assert ack is not None
                delivered += ack
            # The fast subscriber got every event, in order.
            for seq in range(total):
                envelope = await fast_sub.get(DEADLINE)
                assert envelope.payload[:4] == seq.to_bytes(4, "big")
            # The slow one now reads everything; what it missed is reported, never silent.
            # The confirmed counts say how many reached it: it reads those, then the report
            # that follows them (which wakes no get(): it is not an event).
            dropped = 2 * total - delivered
            assert dropped > 0
            received: list[int] = []
            for _ in range(total - dropped):
                envelope = await slow_sub.get(DEADLINE)
                received.append(int.from_bytes(envelope.payload[:4], "big"))
            await until(lambda: slow.dropped == dropped, "the Dropped report")
            assert sum(lost) == dropped
            assert slow_sub.pending == 0  # nothing beyond what the counts said
            assert received == sorted(received)  # order kept among what arrived


async def test_a_subscriber_that_falls_behind_holds_the_publisher_back_and_loses_nothing(
    address: str,
) -> None:
    config = BrokerConfig(
        address=address,
        stats_interval=0,
        # Half the limit is the headroom a read pass has past the point a hold begins:
        # more than one pass can bring (256 KiB).
        max_outbound_bytes=1 << 20,
        publisher_pause=60.0,  # longer than the test: the hold ends because it drained
        heartbeat_interval=60.0,  # the raw subscriber never pings
    )
    async with Broker(config):
        raw = await Raw.open(address)
        welcome = await raw.hello("agent")
        raw.send(Frame(subscribe=frames_pb2.Subscribe(request_id=1, filter="events.#")))
        assert (await raw.recv()).WhichOneof("body") == "sub_ack"
        total = 1500  # ~12 MB of events: far more than the limit and the socket buffers hold
        async with (
            await eventbus.connect(address, principal="procmond") as proc,
            await eventbus.connect(address, principal="agent") as admin,
        ):

            async def publish_all() -> None:
                for seq in range(total):
                    await proc.publish("events.process.metadata", seq.to_bytes(4, "big") * 2048)
                await proc.flush()

            publishing = asyncio.create_task(publish_all())

            async def raw_is_behind() -> bool:
                clients = await admin.list_subscriptions(all_clients=True)
                (info,) = [c for c in clients if c.identity.connection_id == welcome.connection_id]
                return info.queued_bytes > config.max_outbound_bytes // 2

            async def fallen_behind() -> None:
                while not await raw_is_behind():
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(fallen_behind(), DEADLINE)  # a guard against a hang
            # It reads everything now: each event, in order, and no Dropped report.
            for seq in range(total):
                frame = await raw.recv()
                assert frame.WhichOneof("body") == "event", frame
                assert frame.event.payload[:4] == seq.to_bytes(4, "big")
            await asyncio.wait_for(publishing, DEADLINE)
        raw.close()


async def test_slow_consumer_disconnect_policy(address: str) -> None:
    config = BrokerConfig(
        address=address,
        stats_interval=0,
        max_outbound_bytes=16 * 1024,
        slow_consumer="disconnect",
        drain_timeout=0.2,
    )
    async with (
        Broker(config) as broker,
        await eventbus.connect(address, principal="agent") as agent,
    ):
        gone = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
        raw = await Raw.open(address)
        welcome = await raw.hello("agent")
        raw.send(Frame(subscribe=frames_pb2.Subscribe(request_id=1, filter="events.#")))
        assert (await raw.recv()).WhichOneof("body") == "sub_ack"
        async with await eventbus.connect(address, principal="procmond") as proc:

            async def flood() -> None:
                while broker.clients > 2:  # the raw client never reads
                    await proc.publish("events.process.batch", b"y" * 4096, confirm=True)

            await asyncio.wait_for(flood(), DEADLINE)
        presence = frames_pb2.ClientPresence.FromString((await gone.get(DEADLINE)).payload)
        assert presence.identity.connection_id == welcome.connection_id
        assert presence.reason.startswith("slow consumer")
        assert [s.filter for s in presence.subscriptions] == ["events.#"]
        raw.close()


# -- shared subscriptions -----------------------------------------------------------------


async def test_group_members_share_events_round_robin(broker: Broker, address: str) -> None:
    async with (
        await eventbus.connect(address, principal="procmond") as w1,
        await eventbus.connect(address, principal="procmond") as w2,
        await eventbus.connect(address, principal="agent") as agent,
    ):
        s1 = await w1.subscribe(topics.TASK_PROCESS, group="workers")
        s2 = await w2.subscribe(topics.TASK_PROCESS, group="workers")
        for n in range(10):
            assert await agent.publish(topics.TASK_PROCESS, bytes([n]), confirm=True) == 1
        got1 = [(await s1.get(DEADLINE)).payload[0] for _ in range(5)]
        got2 = [(await s2.get(DEADLINE)).payload[0] for _ in range(5)]
        assert sorted(got1 + got2) == list(range(10))
        # A member that leaves stops getting turns at once.
        await w2.close()
        for n in range(10, 14):
            assert await agent.publish(topics.TASK_PROCESS, bytes([n]), confirm=True) == 1
        assert [(await s1.get(DEADLINE)).payload[0] for _ in range(4)] == [10, 11, 12, 13]


# -- embedding ------------------------------------------------------------------------------


async def test_in_process_client_uses_the_same_rules(broker: Broker, address: str) -> None:
    local = await broker.connect_local("agent")
    async with local, await eventbus.connect(address, principal="procmond") as proc:
        sub = await local.subscribe("events.process.+")
        await proc.publish("events.process.lifecycle", b"hi")
        envelope = await sub.get(DEADLINE)
        assert envelope.publisher.principal == "procmond"
        assert envelope.publisher.pid == os.getpid()
        with pytest.raises(eventbus.PermissionDenied):
            await local.publish("events.process.lifecycle", b"")


async def test_stop_says_goodbye_to_clients(address: str) -> None:
    broker = Broker(BrokerConfig(address=address, stats_interval=0))
    await broker.start()
    client = await eventbus.connect(address, principal="agent", reconnect=False)
    sub = await client.subscribe("events.#")
    iterating = asyncio.ensure_future(sub.__anext__())  # an `async for` at its next event
    await broker.stop()
    with pytest.raises(eventbus.ConnectionLost, match="goodbye"):
        await asyncio.wait_for(iterating, DEADLINE)
    with pytest.raises(eventbus.ConnectionLost, match="goodbye"):
        await sub.get(DEADLINE)
    await client.close()
    assert not os.path.exists(address)


# -- observability --------------------------------------------------------------------------


async def test_stats_are_published_to_admins(address: str) -> None:
    config = BrokerConfig(address=address, stats_interval=0.05, heartbeat_interval=0.1)
    async with Broker(config), await eventbus.connect(address, principal="agent") as agent:
        stats_sub = await agent.subscribe(topics.SYS_BROKER_STATS)
        async with await eventbus.connect(address, principal="procmond") as proc:
            await agent.subscribe("events.#")
            await proc.publish("events.process.tree", b"x", confirm=True)
            # Stats come from the broker itself and decode through the payload registry.
            while True:
                envelope = await stats_sub.get(DEADLINE)
                stats = envelope.decode()
                assert isinstance(stats, frames_pb2.BrokerStats)
                assert envelope.publisher.principal == "$broker"
                if stats.clients == 2 and stats.messages_in >= 1:
                    break
            principals = {c.identity.principal for c in stats.clients_detail}
            assert principals == {"agent", "procmond"}
            assert stats.subscriptions == 2


async def test_collectors_may_not_read_broker_topics(broker: Broker, address: str) -> None:
    async with await eventbus.connect(address, principal="procmond") as proc:
        with pytest.raises(eventbus.PermissionDenied):
            await proc.subscribe(topics.SYS_BROKER_STATS)
        with pytest.raises(eventbus.PermissionDenied, match="reserved for the broker"):
            await proc.publish("$SYS.client.connected", b"")


async def test_memory_budget_pauses_publishers_until_subscribers_catch_up(
    address: str,
) -> None:
    config = BrokerConfig(
        address=address,
        stats_interval=0,
        memory_budget_bytes=512 * 1024,
        max_outbound_bytes=64 << 20,
        budget_pause=3600,  # this test is about the pause; shedding has tests of its own
    )
    async with Broker(config) as broker:
        raw = await Raw.open(address)
        await raw.hello("agent")
        raw.send(Frame(subscribe=frames_pb2.Subscribe(request_id=1, filter="events.#")))
        assert (await raw.recv()).WhichOneof("body") == "sub_ack"
        async with await eventbus.connect(address, principal="procmond") as proc:
            count = 512  # 4 MiB: far more than the budget plus the socket buffers

            async def publish_all() -> None:
                for _ in range(count):
                    await proc.publish("events.process.batch", b"z" * 8192)
                await proc.publish("events.process.batch", b"last", confirm=True)

            publisher = asyncio.create_task(publish_all())

            # The subscriber reads nothing until the broker has paused its publishers.
            async def paused() -> None:
                while not broker.publishers_paused:
                    assert not publisher.done(), "publishers were never paused"
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(paused(), DEADLINE)
            kinds = []
            while True:
                frame = await raw.recv()
                kinds.append(frame.WhichOneof("body"))
                if frame.WhichOneof("body") == "event" and frame.event.payload == b"last":
                    break
            await asyncio.wait_for(publisher, DEADLINE)
            # The budget paused the publisher instead of dropping anything.
            assert kinds == ["event"] * (count + 1)
            assert broker.stats().dropped == 0
        raw.close()
