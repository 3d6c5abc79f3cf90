"""The bus across real OS processes: a broker process, collector processes, the agent.

The broker runs as ``python -m eventbus.broker``; procmond and netmond are
``tests/procs/collector.py`` processes; the agent is this test process. Children inherit the
environment, so under ``EVENTBUS_NO_EXTENSIONS=1`` everything runs on the pure-Python core.

No test waits for time to pass: children say when they are ready on stdout, a ping round
trip proves the broker has written everything before it, and deadlines only fail a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from collections import defaultdict
from typing import Any

import pytest
from _procs import (
    DEADLINE,
    BrokerProc,
    CollectorProc,
    Spawner,
    leftover_brokers,
    sigkill,
    start_broker,
)

import eventbus
from eventbus import topics
from eventbus.v1 import frames_pb2, payloads_pb2

pytest_plugins = ["_procs"]

# The broker processes here stop on SIGTERM and must exit 0; Windows cannot send one.
pytestmark = pytest.mark.skipif(
    sys.platform == "win32",
    reason="broker processes stopped by SIGTERM; over pipes see test_windows_bus",
)

PROCESS_TOPICS = ("events.process.lifecycle", "events.process.metadata", "events.process.tree")
NETWORK_TOPICS = (
    "events.network.lifecycle",
    "events.network.connection",
    "events.network.dns.query",
)


async def drain(client: eventbus.Client, *subs: eventbus.Subscription) -> list[list[Any]]:
    """Everything the broker wrote to ``client`` so far, per subscription.

    The broker answers the ping after every event it wrote to this connection before, and
    the client queues each event before it handles the pong.
    """
    await client.ping(timeout=DEADLINE)
    return [[await sub.get(timeout=0) for _ in range(sub.pending)] for sub in subs]


async def take(sub: eventbus.Subscription, count: int) -> list[eventbus.Envelope]:
    return [await sub.get(timeout=DEADLINE) for _ in range(count)]


def by_publisher(envelopes: list[eventbus.Envelope]) -> dict[int, list[eventbus.Envelope]]:
    grouped: dict[int, list[eventbus.Envelope]] = defaultdict(list)
    for envelope in envelopes:
        grouped[envelope.publisher.pid].append(envelope)
    return grouped


def sequence(envelope: eventbus.Envelope) -> int:
    """The sequence number the publisher's correlation metadata gave ``envelope``."""
    assert envelope.correlation is not None, "an event without correlation metadata"
    return envelope.correlation.sequence


def task(task_id: str, kind: str) -> payloads_pb2.Task:
    return payloads_pb2.Task(task_id=task_id, collector_kind=kind, task_type="scan")


# --- the broker process -------------------------------------------------------------------


def test_broker_listens_on_a_private_socket_and_stops_cleanly(bus_dir: str) -> None:
    broker = start_broker(bus_dir)
    try:
        directory = os.path.dirname(broker.address)
        assert stat.S_ISSOCK(os.stat(broker.address).st_mode)
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(broker.address).st_mode) == 0o600
        assert broker.stop(signal.SIGTERM) == 0, broker.diagnostics()
        assert not os.path.exists(broker.address), "the broker left its socket behind"
        assert leftover_brokers(broker.address) == []
    finally:
        broker.reap()


def test_a_second_broker_on_the_same_address_refuses_to_start(broker: BrokerProc) -> None:
    second = BrokerProc(broker.address, name="second-broker")
    try:
        assert second.wait_exit() == 1, second.diagnostics()
        errors = "\n".join(second.stderr.history)
        assert f"another broker answers on {broker.address!r}" in errors, errors
    finally:
        second.reap()
    # The first one is untouched: it still serves, and its socket is still there.
    assert broker.returncode is None
    assert os.path.exists(broker.address)


async def test_a_killed_brokers_stale_socket_is_replaced(bus_dir: str) -> None:
    first = start_broker(bus_dir)
    try:
        sigkill(first)
    finally:
        first.reap()
    assert os.path.exists(first.address), "SIGKILL gives the broker no chance to clean up"
    second = start_broker(bus_dir)
    try:
        async with await eventbus.connect(second.address, principal="agent") as agent:
            assert agent.connection_id == 1
        assert await second.astop() == 0, second.diagnostics()
    finally:
        second.reap()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_drains_connected_clients_and_exits_zero(
    broker: BrokerProc, spawn: Spawner, signum: int
) -> None:
    # Clients that do not reconnect, so the end of the connection is what they report.
    procmond = await spawn.acollector("procmond", topics.TASK_PROCESS, reconnect=False)
    agent = await eventbus.connect(broker.address, principal="agent", reconnect=False)
    async with agent:
        events = await agent.subscribe("events.#")
        for number in range(20):
            delivered = await agent.publish(
                topics.TASK_PROCESS, task(f"t{number}", "process"), confirm=True
            )
            assert delivered == 1
        await procmond.acommand(f"publish 100 {' '.join(PROCESS_TOPICS)}", "published")

        assert await broker.astop(signum) == 0, broker.diagnostics()
        assert not os.path.exists(broker.address)

        # The agent gets everything the broker had accepted, then the end of the connection.
        received = []
        with pytest.raises(eventbus.ConnectionLost, match="goodbye"):
            async for envelope in events:
                received.append(envelope)
        assert [sequence(e) for e in received] == list(range(100))
        assert not agent.connected
        with pytest.raises(eventbus.ConnectionLost):
            await agent.publish(topics.TASK_PROCESS, b"")

    # The collector got every task, then learnt the broker was gone, and exited by itself.
    report = await procmond.aexpect("report")
    assert report["failures"] == []
    assert [r["task_id"] for r in report["received"][topics.TASK_PROCESS]] == [
        f"t{n}" for n in range(20)
    ]
    closed = await procmond.aexpect("closed")
    assert closed["error"] == "ConnectionLost", closed
    assert "goodbye" in closed["message"]
    assert await _exit_code(procmond) == 0


async def test_a_collector_reconnects_after_a_broker_restart(
    broker_with: Any, spawn_on: Any
) -> None:
    first = broker_with()
    spawn = spawn_on(first)
    procmond = await spawn.acollector("procmond", topics.TASK_PROCESS, name="procmond")
    assert await first.astop() == 0, first.diagnostics()
    await procmond.acommand("wait-disconnected", "disconnected")
    # Published while there is no broker: kept, in order, for the next connection.
    procmond.send(f"publish 30 {topics.PROCESS_LIFECYCLE}")
    sent = await procmond.aexpect("sent")
    assert sent == {"event": "sent", "count": 30, "connected": False}
    # Held still until the agent's subscription exists on the new broker.
    procmond.signal(signal.SIGSTOP)
    try:
        second = broker_with(same_as=first)
        assert second.address == first.address
        async with await eventbus.connect(second.address, principal="agent") as agent:
            events = await agent.subscribe("events.#")
            procmond.signal(signal.SIGCONT)
            await procmond.aexpect("published")
            back = await procmond.acommand("reconnected 1", "reconnected")
            (got,) = await drain(agent, events)
            assert [e.correlation.sequence for e in got] == list(range(30))
            assert {e.publisher.connection_id for e in got} == {back["connection_id"]}
            assert {e.publisher.pid for e in got} == {procmond.pid}

            # Its subscription was registered again on the new broker.
            clients = {c.identity.pid: c for c in await agent.list_subscriptions(all_clients=True)}
            assert [s.filter for s in clients[procmond.pid].subscriptions] == [topics.TASK_PROCESS]
            again = task("again", "process")
            assert await agent.publish(topics.TASK_PROCESS, again, confirm=True) == 1
            report = await procmond.astop()
            assert [r["task_id"] for r in report[topics.TASK_PROCESS]] == ["again"]
    finally:
        procmond.signal(signal.SIGCONT)


async def _exit_code(child: Any) -> int:
    code: int = await asyncio.to_thread(child.wait_exit)
    return code


# --- many processes, one bus --------------------------------------------------------------


async def test_collectors_events_reach_every_matching_subscription_exactly_once_in_order(
    broker: BrokerProc, spawn: Spawner
) -> None:
    count = 300
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        # The agent's subscriptions exist before any collector is told to publish.
        everything = await agent.subscribe("events.#")
        lifecycles = await agent.subscribe("events.+.lifecycle")
        process = await agent.subscribe("events.process.+")
        procmond = await spawn.acollector("procmond", topics.TASK_PROCESS, name="procmond")
        netmond = await spawn.acollector("netmond", topics.TASK_NETWORK, name="netmond")
        for collector in (procmond, netmond):
            assert collector.ready["backend"] == eventbus.BACKEND
            assert collector.ready["pid"] == collector.pid
            assert collector.ready["identity"]["pid"] == collector.pid

        procmond.send(f"publish {count} {' '.join(PROCESS_TOPICS)}")
        netmond.send(f"publish {count} {' '.join(NETWORK_TOPICS)}")
        for collector in (procmond, netmond):
            assert (await collector.aexpect("published"))["count"] == count
        got_all, got_lifecycles, got_process = await drain(agent, everything, lifecycles, process)

        connection = {
            procmond.pid: procmond.ready["connection_id"],
            netmond.pid: netmond.ready["connection_id"],
        }
        published = {
            procmond.pid: [(PROCESS_TOPICS[s % 3], s) for s in range(count)],
            netmond.pid: [(NETWORK_TOPICS[s % 3], s) for s in range(count)],
        }
        principal = {procmond.pid: "procmond", netmond.pid: "netmond"}

        def check(envelopes: list[eventbus.Envelope], wanted: Any) -> None:
            grouped = by_publisher(envelopes)
            assert set(grouped) <= set(published), f"unknown publishers {set(grouped)}"
            for pid, topic_seqs in published.items():
                expected = [(t, s) for t, s in topic_seqs if wanted(t)]
                got = [(e.topic, sequence(e)) for e in grouped.get(pid, [])]
                # Exactly what was published: nothing lost, nothing twice, publish order.
                assert got == expected, f"{principal[pid]}: {len(got)} of {len(expected)}"
            for envelope in envelopes:
                who = envelope.publisher
                assert who.principal == principal[who.pid]
                assert who.connection_id == connection[who.pid]
                assert who.uid == os.getuid()

        check(got_all, lambda t: True)
        check(got_lifecycles, lambda t: t.split(".")[2] == "lifecycle" and t.count(".") == 2)
        check(got_process, lambda t: t.startswith("events.process."))
        assert len(got_all) == 2 * count

        # Payloads arrive intact and decode by topic: procmond's ProcessEvents, netmond's JSON.
        for envelope in got_process:
            event = envelope.decode()
            assert isinstance(event, payloads_pb2.ProcessEvent)
            assert event.pid == procmond.pid
            assert event.collector_id == f"procmond:{envelope.correlation.sequence}"
        for envelope in got_all:
            if envelope.topic.startswith("events.network."):
                body = json.loads(envelope.payload)
                assert body == {"source": "netmond", "seq": envelope.correlation.sequence}

        for collector in (procmond, netmond):
            report = await collector.astop()
            assert all(not records for records in report.values()), report


async def test_tasks_reach_only_the_collector_of_their_kind(
    broker: BrokerProc, spawn: Spawner
) -> None:
    tasks = 40
    procmond = await spawn.acollector(
        "procmond", topics.TASK_PROCESS, ack_topic=topics.HEALTH_STATUS, name="procmond"
    )
    netmond = await spawn.acollector(
        "netmond", topics.TASK_NETWORK, ack_topic=topics.HEALTH_STATUS, name="netmond"
    )
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        acks = await agent.subscribe(topics.HEALTH_STATUS)
        for number in range(tasks):
            reached = await agent.publish(
                topics.TASK_PROCESS, task(f"p{number}", "process"), confirm=True
            )
            assert reached == 1
        for number in range(3):
            reached = await agent.publish(
                topics.TASK_NETWORK, task(f"n{number}", "network"), confirm=True
            )
            assert reached == 1
        # Every task is acknowledged over the bus by the collector that received it.
        got = await take(acks, tasks + 3)
        acked = defaultdict(list)
        for envelope in got:
            status = envelope.decode()
            assert isinstance(status, payloads_pb2.HealthStatus)
            assert envelope.publisher.pid == int(status.details["pid"])
            acked[envelope.publisher.pid].append(status.details["task_id"])
        assert acked == {
            procmond.pid: [f"p{n}" for n in range(tasks)],
            netmond.pid: [f"n{n}" for n in range(3)],
        }
        assert {e.publisher.principal for e in got} == {"procmond", "netmond"}

        process_report = await procmond.astop()
        network_report = await netmond.astop()

    for report, prefix, number in (
        (process_report, "p", tasks),
        (network_report, "n", 3),
    ):
        (records,) = report.values()
        assert [r["task_id"] for r in records] == [f"{prefix}{n}" for n in range(number)]
        assert {r["pid"] for r in records} == {os.getpid()}
        assert {r["principal"] for r in records} == {"agent"}
        assert {r["uid"] for r in records} == {os.getuid()}
    assert list(process_report) == [topics.TASK_PROCESS]
    assert list(network_report) == [topics.TASK_NETWORK]


async def test_confirmed_publish_counts_subscriber_connections(
    broker: BrokerProc, spawn: Spawner
) -> None:
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        assert await agent.publish(topics.TASK_PROCESS, task("none", "process"), confirm=True) == 0
        procmonds = [
            await spawn.acollector("procmond", topics.TASK_PROCESS, name=f"procmond-{n}")
            for n in range(3)
        ]
        assert await agent.publish(topics.TASK_PROCESS, task("all", "process"), confirm=True) == 3
        # A connection with two matching subscriptions is still one subscriber connection.
        fourth = await spawn.acollector(
            "procmond",
            topics.TASK_PROCESS,
            f"{topics.TASK_PROCESS}@solo",
            topics.COLLECTOR_CONFIG,
            name="procmond-3",
        )
        assert await agent.publish(topics.TASK_PROCESS, task("four", "process"), confirm=True) == 4
        assert await agent.publish(topics.COLLECTOR_CONFIG, b"", confirm=True) == 1
        # Not confirmed: no count.
        assert await agent.publish(topics.TASK_PROCESS, task("quiet", "process")) is None
        # Its Pong follows the publish through the broker, so "quiet" is queued for every
        # subscriber before any of them settles (stop pings the broker first).
        await agent.ping()

        reports = [await proc.astop() for proc in procmonds]
        for report in reports:
            assert [r["task_id"] for r in report[topics.TASK_PROCESS]] == ["all", "four", "quiet"]
        fourth_report = await fourth.astop()
        assert [r["task_id"] for r in fourth_report[topics.TASK_PROCESS]] == ["four", "quiet"]
        assert [r["task_id"] for r in fourth_report[f"{topics.TASK_PROCESS}@solo"]] == [
            "four",
            "quiet",
        ]
        assert [r["topic"] for r in fourth_report[topics.COLLECTOR_CONFIG]] == [
            topics.COLLECTOR_CONFIG
        ]
        # Everyone left: back to zero.
        assert await agent.publish(topics.TASK_PROCESS, task("gone", "process"), confirm=True) == 0


# --- slow consumers -----------------------------------------------------------------------


async def publish_in_steps(
    procmond: CollectorProc, agent: eventbus.Client, sub: eventbus.Subscription
) -> list[int]:
    """Have procmond publish STEPS x PER_STEP padded events, the agent keeping up.

    The agent takes each step's events before the next step is published, so it never has
    more than one step (about 55 KiB) outstanding, a fraction of its outbound limit even if
    the broker holds a whole step at once: it is never the slow consumer. A subscriber that
    reads nothing falls behind by the whole 1.6 MiB, far more than its socket and its
    outbound limit hold.
    """
    seqs: list[int] = []
    for _ in range(STEPS):
        await procmond.acommand(f"publish {PER_STEP} {topics.PROCESS_LIFECYCLE}", "published")
        (got,) = await drain(agent, sub)
        seqs += [e.correlation.sequence for e in got]
    return seqs


STEPS, PER_STEP, PAD = 30, 50, 1000
SLOW_BROKER = ("--max-outbound-bytes", str(256 * 1024), "--heartbeat-interval", "60")


async def test_a_stopped_subscriber_loses_its_newest_events_and_is_told_how_many(
    broker_with: Any, spawn_on: Any
) -> None:
    count = STEPS * PER_STEP
    # A small outbound buffer; heartbeats far apart so the stopped process is not dropped.
    broker = broker_with(*SLOW_BROKER)
    spawn = spawn_on(broker)
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        fast = await agent.subscribe(topics.PROCESS_ALL)
        slow = await spawn.acollector("agent", topics.PROCESS_ALL, name="slow")
        procmond = await spawn.acollector("procmond", name="procmond", pad=PAD)
        slow.signal(signal.SIGSTOP)
        try:
            # The agent gets every event while the slow process does not read at all.
            assert await publish_in_steps(procmond, agent, fast) == list(range(count))
            assert agent.dropped == 0
        finally:
            slow.signal(signal.SIGCONT)
        total = await slow.acommand(f"wait-total {count}", "total")
        assert total["dropped"] > 0, total
        assert total["received"] + total["dropped"] == count
        report = await slow.astop()
    # Never silently short: it got the oldest events, in order, and was told of the rest.
    seqs = [r["seq"] for r in report[topics.PROCESS_ALL]]
    assert seqs == list(range(len(seqs)))
    assert len(seqs) == total["received"]
    await procmond.astop()


async def test_a_stopped_subscriber_is_disconnected_under_the_disconnect_policy(
    broker_with: Any, spawn_on: Any
) -> None:
    count = STEPS * PER_STEP
    broker = broker_with(*SLOW_BROKER, "--slow-consumer", "disconnect")
    spawn = spawn_on(broker)
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        fast = await agent.subscribe(topics.PROCESS_ALL)
        gone = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
        slow = await spawn.acollector("agent", topics.PROCESS_ALL, name="slow")
        procmond = await spawn.acollector("procmond", name="procmond", pad=PAD)
        slow.signal(signal.SIGSTOP)
        try:
            assert await publish_in_steps(procmond, agent, fast) == list(range(count))
            while True:
                presence = frames_pb2.ClientPresence.FromString(
                    (await gone.get(timeout=DEADLINE)).payload
                )
                if presence.identity.pid == slow.pid:
                    break
        finally:
            slow.signal(signal.SIGCONT)
        # The announcement says why it went.
        assert "outbound buffer" in presence.reason, presence.reason
        # Woken up, it reads what the broker had queued, learns it was cut off, and
        # reconnects; what it missed meanwhile is gone (at most once), what it got is in
        # order.
        back = await slow.acommand("reconnected 1", "reconnected")
        clients = {c.identity.pid: c for c in await agent.list_subscriptions(all_clients=True)}
        assert clients[slow.pid].identity.connection_id == back["connection_id"]
        assert [s.filter for s in clients[slow.pid].subscriptions] == [topics.PROCESS_ALL]
        report = await slow.astop()
        seqs = [r["seq"] for r in report[topics.PROCESS_ALL]]
        assert 0 < len(seqs) < count
        assert seqs == list(range(len(seqs)))
    await procmond.astop()
