"""Client behaviour: reconnection with buffered publishes, request/reply, local refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from _wait import until

import eventbus
from eventbus import Broker, BrokerConfig, topics
from eventbus.client import Reconnect

DEADLINE = 10.0  # a failure guard, never a wait that success depends on
FAST = Reconnect(initial_delay=0.01, max_delay=0.05)


def config(address: str) -> BrokerConfig:
    return BrokerConfig(address=address, stats_interval=0)


# -- reconnection -------------------------------------------------------------------------


async def test_reconnects_resubscribes_and_flushes_in_order(address: str) -> None:
    first = Broker(config(address))
    await first.start()
    proc = await eventbus.connect(address, principal="procmond", reconnect=FAST)
    agent = await eventbus.connect(address, principal="agent", reconnect=FAST)
    old_sub = await agent.subscribe("events.process.#")
    assert await proc.publish("events.process.lifecycle", b"before", confirm=True) == 1
    assert (await old_sub.get(DEADLINE)).payload == b"before"
    await first.stop()

    # Published while no broker runs: kept, then sent in order once connected again.
    await until(lambda: not proc.connected, "the publisher notices the broker is gone")
    for n in range(5):
        await proc.publish("events.process.lifecycle", bytes([n]))

    second = Broker(config(address))
    # A subscriber that exists before the socket is served sees the flushed backlog.
    local = await second.connect_local("agent")
    flushed = await local.subscribe("events.process.#")
    await second.start()
    try:
        assert [(await flushed.get(DEADLINE)).payload[0] for _ in range(5)] == list(range(5))
        # The socket agent registered its subscription again.
        await agent.wait_connected(DEADLINE)
        await proc.wait_connected(DEADLINE)
        assert await proc.publish("events.process.lifecycle", b"after", confirm=True) == 2
        # Which of the two clients reconnected first decides how much of the backlog reached
        # the socket agent (at most once); what did arrive is in order, and what did not is
        # counted lost in transit, since "after" follows it in the same stream.
        seen: list[bytes] = []
        while not seen or seen[-1] != b"after":
            seen.append((await old_sub.get(DEADLINE)).payload)
        flushed_seen = seen[:-1]
        assert flushed_seen == [bytes([n]) for n in range(5)][5 - len(flushed_seen) :]
        assert len(flushed_seen) + agent.lost == 5
        assert agent.reconnects == proc.reconnects == 1
        assert proc.unsent == 0
    finally:
        await asyncio.gather(local.close(), agent.close(), proc.close())
        await second.stop()


async def test_publishes_that_do_not_fit_the_buffer_are_counted(address: str) -> None:
    broker = Broker(config(address))
    await broker.start()
    small = Reconnect(initial_delay=0.01, max_delay=0.05, buffer_bytes=200)
    proc = await eventbus.connect(address, principal="procmond", reconnect=small)
    await broker.stop()
    await until(lambda: not proc.connected, "the publisher notices the broker is gone")
    sent = 20
    for _ in range(sent):
        await proc.publish("events.process.metadata", b"x" * 40)
    assert proc.unsent > 0
    kept = sent - proc.unsent
    broker = Broker(config(address))
    local = await broker.connect_local("agent")
    sub = await local.subscribe("events.process.#")
    await broker.start()
    try:
        for _ in range(kept):
            await sub.get(DEADLINE)
        await proc.wait_connected(DEADLINE)
        assert await proc.publish("events.process.tree", b"end", confirm=True) == 1
        assert (await sub.get(DEADLINE)).payload == b"end"  # nothing else arrived
    finally:
        await asyncio.gather(local.close(), proc.close())
        await broker.stop()


async def test_gives_up_after_the_configured_attempts(address: str) -> None:
    broker = Broker(config(address))
    await broker.start()
    client = await eventbus.connect(
        address, principal="agent", reconnect=Reconnect(initial_delay=0.01, max_attempts=2)
    )
    sub = await client.subscribe("events.#")
    await broker.stop()
    reason = await asyncio.wait_for(client.wait_closed(), DEADLINE)
    assert isinstance(reason, eventbus.ConnectionLost)
    assert "gave up after 2" in str(reason)
    with pytest.raises(eventbus.ConnectionLost):
        await sub.get(DEADLINE)
    with pytest.raises(eventbus.ConnectionLost):
        await client.publish("control.health.status", b"")
    await client.close()


async def test_first_connection_failure_is_immediate(address: str) -> None:
    with pytest.raises(eventbus.ConnectionLost, match="cannot connect"):
        await eventbus.connect(address, principal="agent")


# -- request / reply ------------------------------------------------------------------------


@pytest.fixture
async def broker(address: str) -> AsyncIterator[Broker]:
    async with Broker(config(address)) as running:
        yield running


async def test_request_gets_the_reply(broker: Broker, address: str) -> None:
    async with (
        await eventbus.connect(address, principal="procmond") as proc,
        await eventbus.connect(address, principal="agent") as agent,
    ):
        tasks = await proc.subscribe(topics.TASK_PROCESS)

        async def respond() -> None:
            request = await tasks.get(DEADLINE)
            assert request.reply_to.startswith(f"$INBOX.{agent.connection_id}.")
            await proc.reply(request, b"done:" + request.payload)

        responder = asyncio.create_task(respond())
        answer = await agent.request(topics.TASK_PROCESS, b"scan", timeout=DEADLINE)
        await responder
        assert answer.payload == b"done:scan"
        assert answer.publisher.principal == "procmond"


async def test_an_inbox_takes_one_reply_per_request(broker: Broker, address: str) -> None:
    async with (
        await eventbus.connect(address, principal="procmond") as proc,
        await eventbus.connect(address, principal="agent") as agent,
    ):
        tasks = await proc.subscribe(topics.TASK_PROCESS)
        waiting = asyncio.create_task(agent.request(topics.TASK_PROCESS, timeout=DEADLINE))
        request = await tasks.get(DEADLINE)
        await proc.publish(request.reply_to, b"first", confirm=True)
        assert (await waiting).payload == b"first"
        with pytest.raises(eventbus.PermissionDenied, match="inbox"):
            await proc.publish(request.reply_to, b"second", confirm=True)


async def test_request_without_reply_times_out(broker: Broker, address: str) -> None:
    async with (
        await eventbus.connect(address, principal="procmond") as proc,
        await eventbus.connect(address, principal="agent") as agent,
    ):
        await proc.subscribe(topics.TASK_PROCESS)
        with pytest.raises(eventbus.Timeout, match="no reply"):
            await agent.request(topics.TASK_PROCESS, timeout=0.05)


async def test_reply_needs_a_request(broker: Broker, address: str) -> None:
    async with (
        await eventbus.connect(address, principal="procmond") as proc,
        await eventbus.connect(address, principal="agent") as agent,
    ):
        tasks = await proc.subscribe(topics.TASK_PROCESS)
        await agent.publish(topics.TASK_PROCESS, b"plain", confirm=True)
        with pytest.raises(ValueError, match="not a request"):
            await proc.reply(await tasks.get(DEADLINE), b"")


# -- local refusals -------------------------------------------------------------------------


async def test_oversized_publish_is_refused_locally(broker: Broker, address: str) -> None:
    async with await eventbus.connect(address, principal="procmond") as proc:
        with pytest.raises(eventbus.FrameTooLarge):
            await proc.publish("events.process.batch", b"x" * (2 << 20))
        assert await proc.publish("events.process.batch", b"fits", confirm=True) == 0


async def test_forbidden_operations_fail_before_the_socket(broker: Broker, address: str) -> None:
    async with await eventbus.connect(address, principal="procmond") as proc:
        before = broker.stats().messages_in
        with pytest.raises(eventbus.PermissionDenied, match="embedded default policy"):
            await proc.publish(topics.COLLECTOR_CONFIG, b"")
        with pytest.raises(eventbus.PermissionDenied):
            await proc.subscribe("events.#")
        with pytest.raises(eventbus.InvalidTopic):
            await proc.publish("events.process.", b"")
        with pytest.raises(eventbus.PermissionDenied):
            await proc.list_subscriptions(all_clients=True)
        assert broker.stats().messages_in == before


async def test_a_broker_with_larger_topic_limits_routes_long_topics_to_the_client(
    address: str,
) -> None:
    """The client's routing follows the limits in Welcome, not its own defaults."""
    deep = "events.process." + ".".join(f"level{n}" for n in range(20))  # 22 levels, > 16
    config = BrokerConfig(
        address=address, stats_interval=0, max_topic_levels=32, max_topic_bytes=1024
    )
    async with (
        Broker(config),
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        exact = await agent.subscribe(deep)
        wide = await agent.subscribe("events.process.#")
        assert await proc.publish(deep, b"deep", confirm=True) == 1
        assert (await exact.get(DEADLINE)).topic == deep
        assert (await wide.get(DEADLINE)).payload == b"deep"
        assert agent.connected


async def test_publishes_are_coalesced_in_order_and_flush_waits_for_them(address: str) -> None:
    async with (
        Broker(config(address)),
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        sub = await agent.subscribe("events.process.#")
        count = 2000
        await proc.publish_many(
            ("events.process.batch", n.to_bytes(2, "big") * 100) for n in range(count)
        )
        await proc.flush()
        assert proc._link.conn.write_buffer_size() == 0
        got = [int.from_bytes((await sub.get(DEADLINE)).payload[:2], "big") for _ in range(count)]
        assert got == list(range(count))


async def test_many_confirmed_publishes_in_flight_at_once(address: str) -> None:
    async with (
        Broker(config(address)),
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        sub = await agent.subscribe("events.process.#")
        acks = await asyncio.gather(
            *(proc.publish("events.process.tree", bytes([n]), confirm=True) for n in range(64))
        )
        assert acks == [1] * 64
        got = [(await sub.get(DEADLINE)).payload[0] for _ in range(64)]
        assert sorted(got) == list(range(64))


async def test_a_refused_event_in_a_batch_stops_it_there(address: str) -> None:
    async with (
        Broker(config(address)),
        await eventbus.connect(address, principal="agent") as agent,
        await eventbus.connect(address, principal="procmond") as proc,
    ):
        sub = await agent.subscribe("events.process.#")
        batch = [("events.process.tree", b"1"), ("control.collector.config", b"x")]
        with pytest.raises(eventbus.PermissionDenied):
            await proc.publish_many([*batch, ("events.process.tree", b"3")])
        assert (await sub.get(DEADLINE)).payload == b"1"
        await proc.ping()
        assert sub.pending == 0
