"""Access control across real processes: local refusals, broker-side enforcement, identity.

Every denial is checked twice where the client could check it: the real client refuses
locally (in a collector process) with ``PermissionDenied``, and a raw connection that skips
the client's checks gets the same answer from the broker, an ``Error`` frame, while the
subscribers that would have received the event get nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import Callable

import pytest
from _procs import (
    DEADLINE,
    BrokerProc,
    RawClient,
    Spawner,
)

import eventbus
from eventbus import topics
from eventbus.acl import Grant
from eventbus.protocol import exception_for
from eventbus.v1 import frames_pb2

pytest_plugins = ["_procs"]

# The broker processes here stop on SIGTERM and must exit 0; Windows cannot send one.
pytestmark = pytest.mark.skipif(
    sys.platform == "win32",
    reason="broker processes stopped by SIGTERM; over pipes see test_windows_bus",
)

_E = frames_pb2.ErrorCode
DEFAULT_RULES = "(rule set 'embedded default policy')"
# Only Linux tells the broker a peer's executable (/proc/PID/exe).
KNOWS_EXE = sys.platform.startswith("linux")
RESERVED = "topics whose first level starts with '$' are reserved for the broker"
PRESENCE = {topics.SYS_CLIENT_CONNECTED, topics.SYS_CLIENT_DISCONNECTED}


async def drain(client: eventbus.Client, sub: eventbus.Subscription) -> list[eventbus.Envelope]:
    """Every event the broker wrote to ``client`` for ``sub`` so far (see test_integration)."""
    await client.ping(timeout=DEADLINE)
    return [await sub.get(timeout=0) for _ in range(sub.pending)]


def assert_denied(frame: frames_pb2.Frame | None, request_id: int, *fragments: str) -> None:
    assert frame is not None, "the broker closed the connection instead of answering"
    assert frame.WhichOneof("body") == "error", frame
    error = frame.error
    assert error.code == _E.ERROR_CODE_PERMISSION_DENIED, error
    assert error.request_id == request_id, error
    for fragment in fragments:
        assert fragment in error.message, error.message


def publish_frame(topic: str, payload: bytes = b"", request_id: int = 0) -> frames_pb2.Frame:
    return frames_pb2.Frame(
        publish=frames_pb2.Publish(request_id=request_id, topic=topic, payload=payload)
    )


# --- the client refuses locally -----------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "topic", "why"),
    [
        ("procmond", "control.collector.config", "no publish rule matches it"),
        ("procmond", "control.collector.task.process", "no publish rule matches it"),
        ("procmond", "events.network.connection", "no publish rule matches it"),
        ("netmond", "events.process.lifecycle", "no publish rule matches it"),
        ("netmond", "$SYS.x", RESERVED),
        ("agent", "$SYS.broker.stats", RESERVED),
        ("agent", "events.process.lifecycle", "no publish rule matches it"),
    ],
)
async def test_a_process_may_not_publish_outside_its_rights(
    spawn: Spawner, principal: str, topic: str, why: str
) -> None:
    collector = await spawn.acollector(principal)
    result = await collector.acommand(f"try-publish {topic}", "result")
    assert result["ok"] is False, result
    assert result["error"] == "PermissionDenied"
    assert f"principal {principal!r} may not publish to {topic!r}: {why}" in result["message"]
    assert result["message"].endswith(DEFAULT_RULES)
    # The refusal did not cost the connection: what is allowed still works.
    allowed = "control.health.status" if principal != "agent" else "control.collector.config"
    assert (await collector.acommand(f"try-publish {allowed}", "result"))["ok"] is True
    await collector.astop()


@pytest.mark.parametrize(
    ("principal", "topic_filter"),
    [
        ("procmond", "events.#"),
        ("procmond", "events.process.#"),
        ("procmond", "control.collector.task.network"),
        ("procmond", "control.collector.task.+"),
        ("procmond", "$SYS.#"),
        ("netmond", "#"),
        ("agent", "#"),
        ("agent", "control.collector.task.process"),
    ],
)
async def test_a_process_may_not_subscribe_outside_its_rights(
    spawn: Spawner, principal: str, topic_filter: str
) -> None:
    collector = await spawn.acollector(principal)
    result = await collector.acommand(f"try-subscribe {topic_filter}", "result")
    assert result["ok"] is False, result
    assert result["error"] == "PermissionDenied"
    assert (
        f"principal {principal!r} may not subscribe to {topic_filter!r}: no subscribe rule "
        "covers every topic it matches"
    ) in result["message"]
    assert result["message"].endswith(DEFAULT_RULES)
    listed = await collector.acommand("list", "list")
    assert listed["clients"] == [{"pid": collector.pid, "principal": principal, "filters": []}]
    await collector.astop()


# --- the broker enforces every frame ------------------------------------------------------


@pytest.mark.parametrize("request_id", [7, 0], ids=["confirmed", "unconfirmed"])
@pytest.mark.parametrize(
    ("principal", "topic", "receiver"),
    [
        ("procmond", "control.collector.config", "netmond"),
        ("procmond", "control.collector.task.network", "netmond"),
        ("netmond", "control.collector.task.process", "procmond"),
    ],
)
async def test_broker_refuses_a_raw_publish_to_control_topics(
    broker: BrokerProc,
    spawn: Spawner,
    principal: str,
    topic: str,
    receiver: str,
    request_id: int,
) -> None:
    collector = await spawn.acollector(receiver, topic)
    raw = await RawClient.connect(broker.address, principal)
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        raw.send(publish_frame(topic, b"forged order", request_id))
        answer = await raw.read()
        assert_denied(
            answer,
            request_id,
            f"principal {principal!r} may not publish to {topic!r}",
            DEFAULT_RULES,
        )
        assert exception_text(answer).endswith("[PERMISSION_DENIED]")
        # A denial is an answer, not a disconnection.
        assert await raw.round_trip() == []
        # The subscription is live: the agent's legitimate order arrives, and only that.
        assert await agent.publish(topic, b"real order", confirm=True) == 1
    report = await collector.astop()
    assert [(r["topic"], r["principal"], r["pid"]) for r in report[topic]] == [
        (topic, "agent", os.getpid())
    ]
    await raw.close()


def exception_text(frame: frames_pb2.Frame | None) -> str:
    assert frame is not None
    return str(exception_for(frame.error))


@pytest.mark.parametrize(
    ("principal", "topic", "allowed"),
    [
        ("procmond", "events.network.connection", "events.process.lifecycle"),
        ("netmond", "events.process.lifecycle", "events.network.connection"),
        ("netmond", "events.filesystem.open", "events.network.connection"),
        ("agent", "events.process.lifecycle", None),
    ],
)
async def test_broker_refuses_a_raw_publish_into_another_namespace(
    broker: BrokerProc, principal: str, topic: str, allowed: str | None
) -> None:
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        events = await agent.subscribe("events.#")
        raw = await RawClient.connect(broker.address, principal)
        raw.send(publish_frame(topic, b"forged event", 3))
        assert_denied(await raw.read(), 3, f"may not publish to {topic!r}", DEFAULT_RULES)
        if allowed is not None:
            raw.send(publish_frame(allowed, b"real event", 4))
            ack, before = await raw.read_until("pub_ack")
            assert before == [] and ack.pub_ack.delivered == 1
        received = await drain(agent, events)
        assert [(e.topic, e.payload) for e in received] == (
            [(allowed, b"real event")] if allowed else []
        )
        await raw.close()


async def test_broker_refuses_a_raw_publish_to_sys(broker: BrokerProc) -> None:
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        system = await agent.subscribe("$SYS.#")
        for principal in ("procmond", "agent"):
            raw = await RawClient.connect(broker.address, principal)
            for number, topic in enumerate(("$SYS.x", topics.SYS_CLIENT_DISCONNECTED), 1):
                raw.send(publish_frame(topic, b"forged", number))
                assert_denied(
                    await raw.read(),
                    number,
                    f"may not publish to {topic!r}: topics whose first level starts with '$' "
                    "are reserved for the broker",
                )
            await raw.close()
        received = await drain(agent, system)
        # Only the broker's own presence events, none of the forged ones.
        assert {e.topic for e in received} <= PRESENCE
        assert all(e.publisher.principal == "$broker" for e in received)
        assert all(e.payload != b"forged" for e in received)


@pytest.mark.parametrize(
    ("principal", "topic_filter", "publisher", "topic"),
    [
        ("procmond", "events.#", "netmond", "events.network.connection"),
        ("procmond", "events.network.#", "netmond", "events.network.connection"),
        ("netmond", "control.collector.task.process", "agent", topics.TASK_PROCESS),
        ("procmond", "$SYS.#", None, None),
        ("agent", "#", "agent", topics.TASK_PROCESS),
    ],
)
async def test_broker_refuses_a_raw_subscribe(
    broker: BrokerProc,
    spawn: Spawner,
    principal: str,
    topic_filter: str,
    publisher: str | None,
    topic: str | None,
) -> None:
    raw = await RawClient.connect(broker.address, principal)
    raw.send(frames_pb2.Frame(subscribe=frames_pb2.Subscribe(request_id=5, filter=topic_filter)))
    assert_denied(
        await raw.read(),
        5,
        f"principal {principal!r} may not subscribe to {topic_filter!r}",
        DEFAULT_RULES,
    )
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        if publisher == "agent":
            assert topic is not None
            # Nobody subscribes there: the refused subscription was never registered.
            assert await agent.publish(topic, b"", confirm=True) == 0
        elif publisher is not None:
            collector = await spawn.acollector(publisher)
            await collector.acommand(f"publish 5 {topic}", "published")
            await collector.astop()
        # Nothing reached the raw connection ($SYS.# would have seen the collector come and
        # go), and the broker lists no subscription for it.
        assert await raw.round_trip() == []
        clients = await agent.list_subscriptions(all_clients=True)
    (mine,) = [
        c for c in clients if c.identity.principal == principal and c.identity.client_name == "raw"
    ]
    assert list(mine.subscriptions) == []
    await raw.close()


# --- identity: granted from OS credentials, stamped by the broker -------------------------


def write_policy(directory: str) -> str:
    """A policy that binds ``agent`` to a uid this process does not have, and ``netmond``
    to an executable it does not run; ``procmond`` to this uid (and, where the OS reports
    a peer's executable, to this Python)."""
    python = os.path.realpath(sys.executable)
    procmond_exe = f'executable = ["{python}"]' if KNOWS_EXE else ""
    path = os.path.join(directory, "policy.toml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            textwrap.dedent(
                f"""\
                [policy]
                name = "integration test policy"

                [principals.agent]
                uid = [4242]
                publish = ["control.#"]
                subscribe = ["events.#", "$SYS.#"]
                admin = true

                [principals.operator]
                uid = [{os.getuid()}]
                subscribe = ["$SYS.#", "events.#"]
                admin = true

                [principals.procmond]
                uid = [{os.getuid()}]
                {procmond_exe}
                publish = ["events.process.#"]

                [principals.netmond]
                executable = ["/opt/daemoneye/bin/netmond"]
                publish = ["events.network.#"]

                [principals.auditor]
                any_user = true
                subscribe = ["events.#"]
                """
            )
        )
    return path


@pytest.fixture
def policy_broker(bus_dir: str, broker_with: Callable[..., BrokerProc]) -> BrokerProc:
    """A broker started with ``--config`` on the policy of :func:`write_policy`."""
    return broker_with("--config", write_policy(bus_dir))


async def test_a_principal_bound_to_another_uid_is_refused(policy_broker: BrokerProc) -> None:
    with pytest.raises(eventbus.PermissionDenied) as refused:
        await eventbus.connect(policy_broker.address, principal="agent")
    message = str(refused.value)
    assert f"peer (pid {os.getpid()}) may not act as principal 'agent'" in message
    assert f"uid {os.getuid()} not in [4242]" in message
    assert "(rule set 'integration test policy')" in message
    assert message.endswith("[UNAUTHENTICATED]")
    # The broker logged who it refused, and carries on serving.
    async with await eventbus.connect(policy_broker.address, principal="operator") as operator:
        clients = await operator.list_subscriptions(all_clients=True)
        assert [c.identity.principal for c in clients] == ["operator"]
    stderr = "\n".join(policy_broker.stderr.history)
    assert f"refused pid={os.getpid()} uid={os.getuid()}" in stderr


async def test_bindings_are_checked_against_each_processs_own_credentials(
    policy_broker: BrokerProc, spawn_on: Callable[[BrokerProc], Spawner]
) -> None:
    spawn = spawn_on(policy_broker)
    as_agent = await spawn.acollector("agent", wait=False)
    refused = await as_agent.aexpect("refused")
    assert refused["error"] == "PermissionDenied"
    assert f"peer (pid {as_agent.pid}) may not act as principal 'agent'" in refused["message"]
    assert f"uid {os.getuid()} not in [4242]" in refused["message"]

    wrong_exe = await spawn.acollector("netmond", wait=False)
    refused = await wrong_exe.aexpect("refused")
    assert f"peer (pid {wrong_exe.pid}) may not act as principal 'netmond'" in refused["message"]
    assert "executable" in refused["message"]
    if KNOWS_EXE:
        assert "/opt/daemoneye/bin/netmond" in refused["message"]

    unknown = await spawn.acollector("root", wait=False)
    refused = await unknown.aexpect("refused")
    assert (
        "principal 'root' is not defined (rule set 'integration test policy')" in refused["message"]
    )
    for child in (as_agent, wrong_exe, unknown):
        assert await asyncio.to_thread(child.wait_exit) == 3

    # uid (and executable) hold for a Python process of this uid: admitted.
    procmond = await spawn.acollector("procmond")
    assert procmond.ready["identity"] == {
        "pid": procmond.pid,
        "uid": os.getuid(),
        "principal": "procmond",
    }
    async with await eventbus.connect(policy_broker.address, principal="auditor") as auditor:
        events = await auditor.subscribe("events.#")
        await procmond.acommand("publish 3 events.process.lifecycle", "published")
        received = await drain(auditor, events)
        assert [(e.publisher.pid, e.publisher.principal) for e in received] == [
            (procmond.pid, "procmond")
        ] * 3
    await procmond.astop()


def test_broker_refuses_to_start_on_an_invalid_policy_naming_the_line(bus_dir: str) -> None:
    path = os.path.join(bus_dir, "policy.toml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('[principals.procmond]\nuid = [0]\npublsh = ["events.process.#"]\n')
    address = os.path.join(bus_dir, "bus", "eventbus.sock")
    broker = BrokerProc(address, "--config", path)
    try:
        assert broker.wait_exit() == 1, broker.diagnostics()
        stderr = "\n".join(broker.stderr.history)
        assert f"{path}:3: unknown key 'publsh' in principal 'procmond'" in stderr
        assert not os.path.exists(address)
    finally:
        broker.reap()


async def test_a_client_cannot_forge_the_publisher(broker: BrokerProc, spawn: Spawner) -> None:
    async with await eventbus.connect(broker.address, principal="agent") as agent:
        events = await agent.subscribe("events.#")

        # A collector process that calls itself "agent" in Hello is still procmond, pid P.
        liar = await spawn.acollector("procmond", client_name="agent")
        await liar.acommand("publish 2 events.process.lifecycle", "published")
        for envelope in await drain(agent, events):
            who = envelope.publisher
            assert (who.pid, who.uid, who.principal) == (liar.pid, os.getuid(), "procmond")
            assert who.connection_id == liar.ready["connection_id"]
            assert who.client_name == "agent"  # a label the client chose, not an identity
        await liar.astop()

        raw = await RawClient.connect(broker.address, "procmond", client_name="agent")
        assert raw.welcome is not None
        forged = frames_pb2.ProcessIdentity(
            pid=1, uid=0, gid=0, principal="agent", connection_id=999_999, client_name="agent"
        )
        # One frame whose bytes hold a whole EventEnvelope with a forged publisher, then a
        # Publish: protobuf keeps the last member of the oneof, so it is a Publish.
        envelope_field = frames_pb2.Frame(
            event=frames_pb2.EventEnvelope(
                topic="events.process.lifecycle", payload=b"forged", publisher=forged
            )
        ).SerializeToString()
        publish = frames_pb2.Publish(
            request_id=11, topic="events.process.lifecycle", payload=b"smuggled"
        ).SerializeToString()
        # ... and the Publish itself carries the forged identity as an unknown field 15.
        publish += _field(15, forged.SerializeToString())
        body = envelope_field + _field(7, publish)
        assert frames_pb2.Frame.FromString(body).WhichOneof("body") == "publish"
        raw.send_bytes(len(body).to_bytes(4, "little") + body)
        ack, before = await raw.read_until("pub_ack")
        assert before == [] and ack.pub_ack.request_id == 11 and ack.pub_ack.delivered == 1

        (delivered,) = await drain(agent, events)
        who = delivered.publisher
        assert delivered.payload == b"smuggled"
        assert (who.pid, who.uid, who.principal) == (os.getpid(), os.getuid(), "procmond")
        assert who.connection_id == raw.welcome.connection_id
        assert 15 not in _unknown_fields(delivered.raw.SerializeToString())

        # An EventEnvelope sent as a frame of its own is refused, and the connection closed.
        raw.send(
            frames_pb2.Frame(
                event=frames_pb2.EventEnvelope(
                    topic="events.process.lifecycle", payload=b"forged", publisher=forged
                )
            )
        )
        error = await raw.read()
        assert error is not None and error.error.code == _E.ERROR_CODE_PROTOCOL
        assert "may not send event frames" in error.error.message
        assert await raw.read() is None
        assert await drain(agent, events) == []
        await raw.close()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _unknown_fields(data: bytes) -> set[int]:
    """Top-level field numbers of an encoded EventEnvelope that it does not define."""
    known = {f.number for f in frames_pb2.EventEnvelope.DESCRIPTOR.fields}
    numbers, pos = set(), 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            pos += size
        else:
            pytest.fail(f"unexpected wire type {wire}")
        numbers.add(number)
    return numbers - known


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


async def test_broker_denials_reach_the_client_as_typed_exceptions(
    broker: BrokerProc, caplog: pytest.LogCaptureFixture
) -> None:
    async with await eventbus.connect(broker.address, principal="procmond") as procmond:
        # As if Welcome had granted everything: the client's own checks now let all through,
        # so every answer below comes from the broker.
        procmond._link.grant = Grant(
            "procmond", publish=("#",), subscribe=("#",), admin=True, rule_set="forged locally"
        )
        with pytest.raises(eventbus.PermissionDenied) as denied:
            await procmond.publish(topics.COLLECTOR_CONFIG, b"", confirm=True)
        assert str(denied.value) == (
            f"principal 'procmond' may not publish to {topics.COLLECTOR_CONFIG!r}: no publish "
            f"rule matches it {DEFAULT_RULES} [PERMISSION_DENIED]"
        )
        with pytest.raises(eventbus.PermissionDenied, match=r"may not subscribe to 'events\.#'"):
            await procmond.subscribe("events.#")
        with pytest.raises(eventbus.PermissionDenied, match="needs the admin right"):
            await procmond.list_subscriptions(all_clients=True)

        # Fire and forget: the broker still answers, and the client reports it.
        with caplog.at_level("WARNING", logger="eventbus.client"):
            await procmond.publish(topics.TASK_NETWORK, b"")
            await procmond.ping(timeout=DEADLINE)
        assert any(
            f"may not publish to {topics.TASK_NETWORK!r}" in record.getMessage()
            for record in caplog.records
        ), caplog.text

        # None of it cost the connection, and the refused subscription left nothing behind.
        (mine,) = await procmond.list_subscriptions()
        assert list(mine.subscriptions) == []
        assert await procmond.publish(topics.PROCESS_LIFECYCLE, b"", confirm=True) == 0
