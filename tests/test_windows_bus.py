"""The whole bus over Windows named pipes: broker, clients, access control, reconnection.

Runs on Windows (or under Wine) only: the broker is embedded in the test's event loop, the
ProactorEventLoop that named pipes need, and clients connect to it through a pipe as they
would from another process; one test uses a real child process. Every test has its own pipe
name. Nothing sleeps for a success to happen: ``DEADLINE`` only fails a test that hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import eventbus
from eventbus import (
    AddressInUse,
    Broker,
    BrokerConfig,
    Client,
    NoResponders,
    PermissionDenied,
)

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="Windows named pipes")

#: How long any one step may take before the test fails (a guard against hangs only).
DEADLINE = 30.0

_PACKAGE_ROOT = str(Path(eventbus.__file__).resolve().parent.parent)
_numbers = itertools.count(1)


@pytest.fixture
def pipe() -> str:
    return rf"\\.\pipe\eventbus-test-{os.getpid()}-{next(_numbers)}"


async def start_broker(address: str) -> Broker:
    broker = Broker(BrokerConfig(address=address, stats_interval=0))
    await broker.start()
    return broker


@pytest.fixture
async def broker(pipe: str) -> AsyncIterator[Broker]:
    started = await start_broker(pipe)
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    """Clients a test opens are added here and closed after it, whatever happened."""
    opened: list[Client] = []
    try:
        yield opened
    finally:
        for client in reversed(opened):
            with contextlib.suppress(Exception):
                await client.close()


async def open_client(clients: list[Client], address: str, principal: str) -> Client:
    client = await eventbus.connect(address, principal=principal)
    clients.append(client)
    return client


# --- publish and subscribe ----------------------------------------------------------------


async def test_events_cross_the_pipe_with_the_publisher_the_broker_saw(
    broker: Broker, pipe: str, clients: list[Client]
) -> None:
    # The module only runs on Windows; the check tells mypy, elsewhere, where the class is.
    if sys.platform == "win32":
        assert isinstance(asyncio.get_running_loop(), asyncio.ProactorEventLoop)
    agent = await open_client(clients, pipe, "agent")
    procmond = await open_client(clients, pipe, "procmond")
    assert agent.principal == "agent"
    assert procmond.principal == "procmond"
    assert agent.connection_id != procmond.connection_id

    sub = await agent.subscribe("events.process.+")
    # Unconfirmed publishes first; the confirmed one after them is answered only once the
    # broker has routed everything this connection sent before it.
    await procmond.publish("events.process.lifecycle", b"one")
    await procmond.publish("events.process.metadata", b"two")
    assert await procmond.publish("events.process.tree", b"three", confirm=True) == 1
    # Deeper than the "+" reaches: routed to nobody.
    assert await procmond.publish("events.process.tree.deep", b"none", confirm=True) == 0

    received = [await sub.get(timeout=DEADLINE) for _ in range(3)]
    assert [(e.topic, e.payload) for e in received] == [
        ("events.process.lifecycle", b"one"),
        ("events.process.metadata", b"two"),
        ("events.process.tree", b"three"),
    ]
    for envelope in received:
        # Stamped by the broker from what the OS reported for the pipe's client end.
        assert envelope.publisher.pid == os.getpid()
        assert envelope.publisher.principal == "procmond"
        assert envelope.publisher.connection_id == procmond.connection_id
        assert envelope.timestamp_ns > 0

    # Nothing else is queued: a ping round trip proves the broker wrote all it had.
    await agent.ping(timeout=DEADLINE)
    assert sub.pending == 0


async def test_two_subscribers_each_get_one_copy(
    broker: Broker, pipe: str, clients: list[Client]
) -> None:
    first = await open_client(clients, pipe, "agent")
    second = await open_client(clients, pipe, "agent")
    procmond = await open_client(clients, pipe, "procmond")
    subs = [
        await first.subscribe("events.process.+"),
        await first.subscribe("events.process.lifecycle"),
        await second.subscribe("events.#"),
    ]
    # Connections reached, not subscriptions: ``first`` has two matching filters.
    assert await procmond.publish("events.process.lifecycle", b"x", confirm=True) == 2
    for sub in subs:
        envelope = await sub.get(timeout=DEADLINE)
        assert (envelope.topic, envelope.payload) == ("events.process.lifecycle", b"x")
        assert envelope.publisher.pid == os.getpid()


# --- access control -----------------------------------------------------------------------


async def test_the_policy_holds_over_pipes(
    broker: Broker, pipe: str, clients: list[Client]
) -> None:
    procmond = await open_client(clients, pipe, "procmond")
    with pytest.raises(PermissionDenied):
        await procmond.publish("control.collector.config", b"{}")
    with pytest.raises(PermissionDenied):
        await procmond.publish("control.collector.config", b"{}", confirm=True)
    with pytest.raises(PermissionDenied):
        await procmond.subscribe("events.#")
    with pytest.raises(PermissionDenied):
        await procmond.subscribe("events.network.+")

    # The denials left the connection usable, with the rights the policy grants.
    agent = await open_client(clients, pipe, "agent")
    config = await procmond.subscribe("control.collector.config")
    assert await agent.publish("control.collector.config", b"{}", confirm=True) == 1
    envelope = await config.get(timeout=DEADLINE)
    assert envelope.publisher.principal == "agent"
    assert envelope.publisher.pid == os.getpid()


# --- request/reply ------------------------------------------------------------------------


async def test_request_and_reply_over_pipes(
    broker: Broker, pipe: str, clients: list[Client]
) -> None:
    agent = await open_client(clients, pipe, "agent")
    procmond = await open_client(clients, pipe, "procmond")
    tasks = await procmond.subscribe("control.collector.task.process")

    async def respond() -> None:
        request = await tasks.get(timeout=DEADLINE)
        assert request.publisher.principal == "agent"
        await procmond.reply(request, b"done: " + request.payload)

    responder = asyncio.ensure_future(respond())
    try:
        answer = await agent.request("control.collector.task.process", b"scan", timeout=DEADLINE)
        await asyncio.wait_for(responder, DEADLINE)
    finally:
        responder.cancel()
    assert answer.payload == b"done: scan"
    assert answer.publisher.principal == "procmond"
    assert answer.publisher.pid == os.getpid()
    assert answer.publisher.connection_id == procmond.connection_id

    with pytest.raises(NoResponders):
        await agent.request("control.collector.task.network", b"scan", timeout=DEADLINE)


# --- one broker per pipe name ------------------------------------------------------------


async def test_a_second_broker_on_the_same_pipe_refuses_to_start(
    broker: Broker, pipe: str, clients: list[Client]
) -> None:
    second = Broker(BrokerConfig(address=pipe, stats_interval=0))
    try:
        with pytest.raises(AddressInUse):
            await second.start()
    finally:
        await second.stop()
    # The first broker still serves on the name.
    agent = await open_client(clients, pipe, "agent")
    procmond = await open_client(clients, pipe, "procmond")
    sub = await agent.subscribe("events.process.+")
    assert await procmond.publish("events.process.lifecycle", b"still", confirm=True) == 1
    assert (await sub.get(timeout=DEADLINE)).payload == b"still"


# --- reconnection -------------------------------------------------------------------------


async def test_clients_come_back_to_a_new_broker_on_the_same_pipe(
    pipe: str, clients: list[Client]
) -> None:
    first: Broker | None = await start_broker(pipe)
    second: Broker | None = None
    try:
        agent = await open_client(clients, pipe, "agent")
        procmond = await open_client(clients, pipe, "procmond")
        sub = await agent.subscribe("events.process.+")
        assert await procmond.publish("events.process.lifecycle", b"before", confirm=True) == 1
        assert (await sub.get(timeout=DEADLINE)).payload == b"before"

        assert first is not None
        await first.stop()
        first = None
        second = await start_broker(pipe)

        await agent.wait_connected(DEADLINE)
        await procmond.wait_connected(DEADLINE)
        assert agent.connected and procmond.connected
        assert agent.reconnects == 1
        assert procmond.reconnects == 1

        # wait_connected returns once the subscriptions are registered again.
        assert await procmond.publish("events.process.lifecycle", b"after", confirm=True) == 1
        envelope = await sub.get(timeout=DEADLINE)
        assert envelope.payload == b"after"
        assert envelope.publisher.principal == "procmond"
        assert envelope.publisher.pid == os.getpid()
        assert envelope.publisher.connection_id == procmond.connection_id
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        for running in (first, second):
            if running is not None:
                await running.stop()


# --- another process -----------------------------------------------------------------------

CHILD = """
import asyncio, os, sys
import eventbus

async def main():
    client = await eventbus.connect(sys.argv[1], principal="procmond", reconnect=False)
    try:
        delivered = await client.publish(
            "events.process.lifecycle", b"from %d" % os.getpid(), confirm=True
        )
    finally:
        await client.close()
    print(delivered, os.getpid(), flush=True)

asyncio.run(main())
"""


def child_env() -> dict[str, str]:
    """This environment (backend selection included) with this eventbus on the path."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + path if path else "")
    env.pop("EVENTBUS_ADDRESS", None)
    return env


@contextlib.contextmanager
def child(address: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(Exception):
            proc.communicate(timeout=DEADLINE)


async def test_a_child_process_is_seen_with_its_own_pid(
    broker: Broker, pipe: str, clients: list[Client]
) -> None:
    agent = await open_client(clients, pipe, "agent")
    sub = await agent.subscribe("events.process.+")
    with child(pipe) as proc:
        assert proc.pid != os.getpid()
        exited = asyncio.ensure_future(asyncio.to_thread(proc.communicate, timeout=DEADLINE))
        event = asyncio.ensure_future(sub.get(timeout=DEADLINE))
        try:
            # A child that fails fails the test at once, with its stderr.
            await asyncio.wait({exited, event}, return_when=asyncio.FIRST_COMPLETED)
            out, err = await exited
            assert proc.returncode == 0, err
            envelope = await event
        finally:
            event.cancel()
    assert out.split() == ["1", str(proc.pid)], (out, err)
    assert envelope.topic == "events.process.lifecycle"
    assert envelope.payload == b"from %d" % proc.pid
    # The pid comes from GetNamedPipeClientProcessId, not from anything the child sent.
    assert envelope.publisher.pid == proc.pid
    assert envelope.publisher.principal == "procmond"
    assert envelope.publisher.connection_id != agent.connection_id
