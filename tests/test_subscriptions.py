"""Subscription management across processes: register, unregister, enumerate, process death.

The admin view (``list_subscriptions(all_clients=True)``) is checked against the real pids
of collector processes; a collector killed with SIGKILL must vanish from it as soon as the
broker announces ``$SYS.client.disconnected``; shared subscriptions split a task topic
between collector processes.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence

import pytest
from _procs import DEADLINE, BrokerProc, RawClient, Spawner, sigkill

import eventbus
from eventbus import topics
from eventbus.v1 import frames_pb2, payloads_pb2

pytest_plugins = ["_procs"]

# The broker processes here stop on SIGTERM and must exit 0; Windows cannot send one.
pytestmark = pytest.mark.skipif(
    sys.platform == "win32",
    reason="broker processes stopped by SIGTERM; over pipes see test_windows_bus",
)

_E = frames_pb2.ErrorCode


def by_pid(clients: Sequence[frames_pb2.ClientInfo]) -> dict[int, frames_pb2.ClientInfo]:
    found = {info.identity.pid: info for info in clients}
    assert len(found) == len(clients), "one connection per process expected here"
    return found


def filters(info: frames_pb2.ClientInfo) -> list[tuple[str, str]]:
    return sorted((s.filter, s.group) for s in info.subscriptions)


async def presence_of(
    sub: eventbus.Subscription, pid: int
) -> tuple[eventbus.Envelope, frames_pb2.ClientPresence]:
    """The next presence event about ``pid`` (events about other connections are skipped)."""
    while True:
        envelope = await sub.get(timeout=DEADLINE)
        presence = frames_pb2.ClientPresence.FromString(envelope.payload)
        if presence.identity.pid == pid:
            return envelope, presence


def task(task_id: str) -> payloads_pb2.Task:
    return payloads_pb2.Task(task_id=task_id, collector_kind="process", task_type="scan")


async def test_admin_lists_each_connection_with_principal_pid_and_filters(
    broker: BrokerProc, spawn: Spawner
) -> None:
    procmond = await spawn.acollector(
        "procmond", topics.TASK_PROCESS, topics.COLLECTOR_CONFIG, name="procmond"
    )
    netmond = await spawn.acollector(
        "netmond", f"{topics.TASK_NETWORK}@netmonds", topics.HEALTH_DIAGNOSTICS, name="netmond"
    )
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        await agent.subscribe("events.#")
        disconnected = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)

        clients = by_pid(await agent.list_subscriptions(all_clients=True))
        assert set(clients) == {procmond.pid, netmond.pid, os.getpid()}
        expected = {
            procmond.pid: ("procmond", [(topics.COLLECTOR_CONFIG, ""), (topics.TASK_PROCESS, "")]),
            netmond.pid: (
                "netmond",
                [(topics.TASK_NETWORK, "netmonds"), (topics.HEALTH_DIAGNOSTICS, "")],
            ),
            os.getpid(): ("agent", [("$SYS.client.disconnected", ""), ("events.#", "")]),
        }
        for pid, (principal, subscribed) in expected.items():
            info = clients[pid]
            assert info.identity.principal == principal
            assert info.identity.uid == os.getuid()
            assert filters(info) == subscribed
            assert len({s.subscription_id for s in info.subscriptions}) == len(subscribed)
        assert clients[procmond.pid].identity.connection_id == procmond.ready["connection_id"]
        assert clients[os.getpid()].identity.connection_id == agent.connection_id

        # Register and unregister in the collector process; the admin view follows.
        assert (await procmond.acommand(f"try-subscribe {topics.HEALTH_DIAGNOSTICS}", "result"))[
            "ok"
        ]
        await procmond.acommand(f"unsubscribe {topics.COLLECTOR_CONFIG}", "unsubscribed")
        clients = by_pid(await agent.list_subscriptions(all_clients=True))
        assert filters(clients[procmond.pid]) == [
            (topics.TASK_PROCESS, ""),
            (topics.HEALTH_DIAGNOSTICS, ""),
        ]
        # An unsubscribed filter gets nothing any more; the others still do.
        assert await agent.publish(topics.COLLECTOR_CONFIG, b"", confirm=True) == 0
        assert await agent.publish(topics.HEALTH_DIAGNOSTICS, b"", confirm=True) == 2

        # The agent's own subscription, closed by its context manager.
        async with await agent.subscribe("events.process.+") as process:
            (mine,) = await agent.list_subscriptions()
            assert ("events.process.+", "") in filters(mine)
            assert process.filter == "events.process.+"
        (mine,) = await agent.list_subscriptions()
        assert filters(mine) == [("$SYS.client.disconnected", ""), ("events.#", "")]

        # A collector sees its own connection only.
        listed = await procmond.acommand("list", "list")
        assert listed["clients"] == [
            {
                "pid": procmond.pid,
                "principal": "procmond",
                "filters": [topics.TASK_PROCESS, topics.HEALTH_DIAGNOSTICS],
            }
        ]
        # Both leave: the broker announces each, and the list no longer shows them.
        for collector in (procmond, netmond):
            await collector.astop()
            await presence_of(disconnected, collector.pid)
        clients = by_pid(await agent.list_subscriptions(all_clients=True))
        assert set(clients) == {os.getpid()}


async def test_a_non_admin_may_not_list_every_client(broker: BrokerProc, spawn: Spawner) -> None:
    procmond = await spawn.acollector("procmond", topics.TASK_PROCESS)
    result = await procmond.acommand("try-list-all", "result")
    assert result["ok"] is False
    assert result["error"] == "PermissionDenied"
    assert (
        "principal 'procmond' may not list all clients: it needs the admin right "
        "(rule set 'embedded default policy')"
    ) in result["message"]

    # The broker refuses it too, when a raw connection skips the client's check.
    raw = await RawClient.connect(broker.address, "netmond")
    raw.send(frames_pb2.Frame(list_request=frames_pb2.ListRequest(request_id=4, all_clients=True)))
    answer = await raw.read()
    assert answer is not None and answer.WhichOneof("body") == "error", answer
    assert answer.error.code == _E.ERROR_CODE_PERMISSION_DENIED
    assert answer.error.request_id == 4
    assert "principal 'netmond' may not list all clients" in answer.error.message
    # Its own connection it may list: one entry, itself.
    raw.send(frames_pb2.Frame(list_request=frames_pb2.ListRequest(request_id=5)))
    reply, before = await raw.read_until("list_reply")
    assert before == []
    assert reply.list_reply.request_id == 5
    assert [c.identity.principal for c in reply.list_reply.clients] == ["netmond"]
    assert [c.identity.pid for c in reply.list_reply.clients] == [os.getpid()]
    await raw.close()
    await procmond.astop()


async def test_a_killed_collectors_subscriptions_go_at_once(
    broker: BrokerProc, spawn: Spawner
) -> None:
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        connected = await agent.subscribe(topics.SYS_CLIENT_CONNECTED)
        disconnected = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
        procmond = await spawn.acollector(
            "procmond", topics.TASK_PROCESS, topics.COLLECTOR_LIFECYCLE, name="procmond"
        )
        survivor = await spawn.acollector("procmond", topics.TASK_PROCESS, name="survivor")

        envelope, hello = await presence_of(connected, procmond.pid)
        assert envelope.publisher.principal == "$broker"
        assert envelope.publisher.pid == broker.pid
        assert hello.identity.principal == "procmond"
        assert hello.reason == "connected"
        assert await agent.publish(topics.TASK_PROCESS, task("before"), confirm=True) == 2

        sigkill(procmond)
        envelope, farewell = await presence_of(disconnected, procmond.pid)
        assert envelope.publisher.pid == broker.pid
        assert farewell.identity.principal == "procmond"
        assert farewell.identity.connection_id == procmond.ready["connection_id"]
        assert sorted(s.filter for s in farewell.subscriptions) == sorted(
            [topics.TASK_PROCESS, topics.COLLECTOR_LIFECYCLE]
        )
        assert farewell.reason, "the broker says why the connection ended"
        assert "goodbye" not in farewell.reason

        # Already gone, with no waiting: from the admin view and from routing.
        clients = by_pid(await agent.list_subscriptions(all_clients=True))
        assert procmond.pid not in clients
        assert set(clients) == {survivor.pid, os.getpid()}
        assert await agent.publish(topics.TASK_PROCESS, task("after"), confirm=True) == 1
        assert await agent.publish(topics.COLLECTOR_LIFECYCLE, b"", confirm=True) == 0

        report = await survivor.astop()
        assert [r["task_id"] for r in report[topics.TASK_PROCESS]] == ["before", "after"]
        _, farewell = await presence_of(disconnected, survivor.pid)
        assert farewell.reason == "goodbye: client closed"
        assert [s.filter for s in farewell.subscriptions] == [topics.TASK_PROCESS]


async def test_a_shared_task_topic_is_split_between_collector_processes(
    broker: BrokerProc, spawn: Spawner
) -> None:
    shared = f"{topics.TASK_PROCESS}@procmonds"
    first = await spawn.acollector("procmond", shared, name="first")
    second = await spawn.acollector("procmond", shared, name="second")
    watcher = await spawn.acollector("procmond", topics.TASK_PROCESS, name="watcher")
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        disconnected = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
        for number in range(10):
            # One member of the group plus the plain subscriber.
            assert await agent.publish(topics.TASK_PROCESS, task(f"t{number}"), confirm=True) == 2

        first_report = await first.astop()
        await presence_of(disconnected, first.pid)
        for number in range(10, 16):
            assert await agent.publish(topics.TASK_PROCESS, task(f"t{number}"), confirm=True) == 2
        # The last member killed: the group is gone, the plain subscriber remains.
        second_report = (await second.acommand("report", "report"))["received"]
        sigkill(second)
        await presence_of(disconnected, second.pid)
        assert await agent.publish(topics.TASK_PROCESS, task("t16"), confirm=True) == 1
        watcher_report = await watcher.astop()

    took_first = [r["task_id"] for r in first_report[shared]]
    took_second = [r["task_id"] for r in second_report[shared]]
    # Round-robin while both were there; every task to exactly one member.
    assert took_first == [f"t{n}" for n in range(0, 10, 2)]
    assert took_second == [f"t{n}" for n in range(1, 10, 2)] + [f"t{n}" for n in range(10, 16)]
    assert [r["task_id"] for r in watcher_report[topics.TASK_PROCESS]] == [
        f"t{n}" for n in range(17)
    ]


async def test_a_hung_collector_is_found_by_heartbeats_and_removed(
    broker_with: Callable[..., BrokerProc], spawn_on: Callable[[BrokerProc], Spawner]
) -> None:
    # Clients ping every second; the broker closes a connection silent for three intervals.
    broker = broker_with("--heartbeat-interval", "1")
    spawn = spawn_on(broker)
    hung = await spawn.acollector("procmond", topics.TASK_PROCESS, name="hung")
    alive = await spawn.acollector("procmond", topics.TASK_PROCESS, name="alive")
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        disconnected = await agent.subscribe(topics.SYS_CLIENT_DISCONNECTED)
        hung.signal(signal.SIGSTOP)  # connected, but silent: no pings any more
        try:
            _, farewell = await presence_of(disconnected, hung.pid)
        finally:
            hung.signal(signal.SIGCONT)
        # The announcement says why: the broker closed it for silence (not just "eof").
        assert "3 heartbeat intervals" in farewell.reason, farewell.reason
        assert [s.filter for s in farewell.subscriptions] == [topics.TASK_PROCESS]

        clients = by_pid(await agent.list_subscriptions(all_clients=True))
        assert set(clients) == {alive.pid, os.getpid()}
        assert await agent.publish(topics.TASK_PROCESS, task("after"), confirm=True) == 1

        # Woken up, the collector finds its connection gone and reconnects, subscriptions
        # and all.
        back = await hung.acommand("reconnected 1", "reconnected")
        assert back["connection_id"] != hung.ready["connection_id"]
        clients = by_pid(await agent.list_subscriptions(all_clients=True))
        assert clients[hung.pid].identity.connection_id == back["connection_id"]
        assert filters(clients[hung.pid]) == [(topics.TASK_PROCESS, "")]
        assert await agent.publish(topics.TASK_PROCESS, task("back"), confirm=True) == 2

        for collector, tasks in ((alive, ["after", "back"]), (hung, ["back"])):
            report = await collector.astop()
            assert [r["task_id"] for r in report[topics.TASK_PROCESS]] == tasks


async def test_broker_stats_describe_each_connection(
    broker_with: Callable[..., BrokerProc], spawn_on: Callable[[BrokerProc], Spawner]
) -> None:
    broker = broker_with("--stats-interval", "0.2")
    spawn = spawn_on(broker)
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        stats = await agent.subscribe(topics.SYS_BROKER_STATS)
        procmond = await spawn.acollector("procmond", topics.TASK_PROCESS, name="procmond")
        await procmond.acommand("publish 4 events.process.lifecycle", "published")
        # Stats taken before the collector published are skipped, not waited out.
        while True:
            envelope = await stats.get(timeout=DEADLINE)
            report = frames_pb2.BrokerStats.FromString(envelope.payload)
            details = {c.identity.pid: c for c in report.clients_detail}
            if procmond.pid in details and details[procmond.pid].messages_in >= 4:
                break
        assert envelope.publisher.principal == "$broker"
        assert envelope.publisher.pid == broker.pid
        assert report.clients == len(report.clients_detail) == 2
        assert report.subscriptions == 2
        assert report.messages_in >= 4
        assert [s.filter for s in details[procmond.pid].subscriptions] == [topics.TASK_PROCESS]
        assert details[os.getpid()].identity.principal == "agent"
        await procmond.astop()
