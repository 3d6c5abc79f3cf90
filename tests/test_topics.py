"""The topic hierarchy constants and the topic -> payload registry."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf.message import Message

from eventbus import errors, topics
from eventbus.v1 import frames_pb2, payloads_pb2

# Every concrete hierarchy topic, with the payload it carries and an example of one.
HIERARCHY: list[tuple[str, Message]] = [
    (
        topics.PROCESS_LIFECYCLE,
        payloads_pb2.ProcessEvent(
            kind=payloads_pb2.PROCESS_EVENT_KIND_START,
            pid=4242,
            ppid=1,
            name="sshd",
            exe="/usr/sbin/sshd",
            cmdline=["/usr/sbin/sshd", "-D"],
            user="root",
            uid=0,
            start_time_ns=1_700_000_000_000_000_000,
            collector_id="procmond-1",
        ),
    ),
    (
        topics.PROCESS_METADATA,
        payloads_pb2.ProcessEvent(
            kind=payloads_pb2.PROCESS_EVENT_KIND_METADATA,
            pid=7,
            cpu_percent=12.5,
            rss_bytes=1 << 20,
        ),
    ),
    (
        topics.PROCESS_TREE,
        payloads_pb2.ProcessEvent(kind=payloads_pb2.PROCESS_EVENT_KIND_TREE, pid=7, ppid=3),
    ),
    (
        topics.PROCESS_INTEGRITY,
        payloads_pb2.ProcessEvent(
            kind=payloads_pb2.PROCESS_EVENT_KIND_INTEGRITY, pid=7, hashes={"sha256": "ab" * 32}
        ),
    ),
    (
        topics.PROCESS_ANOMALY,
        payloads_pb2.ProcessEvent(
            kind=payloads_pb2.PROCESS_EVENT_KIND_ANOMALY,
            pid=7,
            anomaly_description="unexpected parent",
            anomaly_score=0.9,
        ),
    ),
    (
        topics.PROCESS_BATCH,
        payloads_pb2.ProcessBatch(
            batch_id="b-1",
            sequence=2,
            events=[
                payloads_pb2.ProcessEvent(pid=1, name="init"),
                payloads_pb2.ProcessEvent(
                    pid=2, kind=payloads_pb2.PROCESS_EVENT_KIND_STOP, exit_code=0
                ),
            ],
        ),
    ),
    (
        topics.COLLECTOR_LIFECYCLE,
        payloads_pb2.CollectorCommand(
            action=payloads_pb2.COLLECTOR_ACTION_RESTART,
            collector_kind="network",
            collector_id="netmond-1",
            reason="config changed",
        ),
    ),
    (
        topics.COLLECTOR_CONFIG,
        payloads_pb2.ConfigUpdate(
            collector_kind="process", settings={"interval_ms": "1000"}, version=3
        ),
    ),
    (
        topics.TASK_PROCESS,
        payloads_pb2.Task(
            task_id="t-1",
            collector_kind="process",
            task_type="enumerate",
            parameters={"full": "true"},
            deadline_ns=5,
        ),
    ),
    (topics.TASK_NETWORK, payloads_pb2.Task(task_id="t-2", collector_kind="network")),
    (topics.TASK_FILESYSTEM, payloads_pb2.Task(task_id="t-3", collector_kind="filesystem")),
    (topics.TASK_PERFORMANCE, payloads_pb2.Task(task_id="t-4", collector_kind="performance")),
    (
        topics.HEALTH_HEARTBEAT,
        payloads_pb2.Heartbeat(
            collector_id="procmond-1",
            collector_kind="process",
            pid=4242,
            sequence=10,
            timestamp_ns=123,
            uptime_s=3.5,
        ),
    ),
    (
        topics.HEALTH_STATUS,
        payloads_pb2.HealthStatus(
            component="procmond",
            state=payloads_pb2.HEALTH_STATE_DEGRADED,
            message="queue backlog",
            details={"queued": "900"},
        ),
    ),
    (
        topics.HEALTH_DIAGNOSTICS,
        payloads_pb2.DiagnosticsRequest(request_id="d-1", target="", sections=["queues"]),
    ),
    (
        topics.SYS_CLIENT_CONNECTED,
        frames_pb2.ClientPresence(
            identity=frames_pb2.ProcessIdentity(pid=9, principal="procmond"), reason="connected"
        ),
    ),
    (
        topics.SYS_CLIENT_DISCONNECTED,
        frames_pb2.ClientPresence(
            identity=frames_pb2.ProcessIdentity(pid=9, principal="procmond"),
            reason="eof",
            subscriptions=[frames_pb2.SubscriptionInfo(subscription_id=1, filter="a.#")],
            dropped=2,
        ),
    ),
    (
        topics.SYS_BROKER_STATS,
        frames_pb2.BrokerStats(timestamp_ns=1, clients=3, subscriptions=4, messages_in=5),
    ),
]


def test_constants_follow_the_hierarchy() -> None:
    assert topics.EVENTS == "events"
    assert topics.EVENTS_ALL == "events.#"
    assert topics.PROCESS_ALL == "events.process.#"
    assert topics.NETWORK_ALL == "events.network.#"
    assert topics.FILESYSTEM_ALL == "events.filesystem.#"
    assert topics.PERFORMANCE_ALL == "events.performance.#"
    for leaf in ("lifecycle", "metadata", "tree", "integrity", "anomaly", "batch"):
        assert getattr(topics, f"PROCESS_{leaf.upper()}") == f"events.process.{leaf}"
    assert topics.COLLECTOR_LIFECYCLE == "control.collector.lifecycle"
    assert topics.COLLECTOR_CONFIG == "control.collector.config"
    for kind in topics.COLLECTOR_KINDS:
        assert getattr(topics, f"TASK_{kind.upper()}") == f"control.collector.task.{kind}"
    assert topics.HEALTH_HEARTBEAT == "control.health.heartbeat"
    assert topics.HEALTH_STATUS == "control.health.status"
    assert topics.HEALTH_DIAGNOSTICS == "control.health.diagnostics"
    assert topics.SYS_ALL == "$SYS.#"
    assert topics.SYS_CLIENT_CONNECTED == "$SYS.client.connected"
    assert topics.SYS_CLIENT_DISCONNECTED == "$SYS.client.disconnected"
    assert topics.SYS_BROKER_STATS == "$SYS.broker.stats"


def test_every_exported_name_exists() -> None:
    for name in topics.__all__:
        assert hasattr(topics, name), name


def test_collector_kinds_and_principals() -> None:
    assert topics.COLLECTOR_KINDS == ("process", "network", "filesystem", "performance")
    assert dict(topics.PRINCIPAL_FOR_KIND) == {
        "process": "procmond",
        "network": "netmond",
        "filesystem": "fsmond",
        "performance": "perfmond",
    }
    with pytest.raises(TypeError):
        topics.PRINCIPAL_FOR_KIND["usb"] = "usbmond"  # type: ignore[index]


@pytest.mark.parametrize("kind", ["process", "network", "filesystem", "performance"])
def test_task_topic_and_events_namespace(kind: str) -> None:
    assert topics.task_topic(kind) == f"control.collector.task.{kind}"
    assert topics.events_namespace(kind) == f"events.{kind}.#"


@pytest.mark.parametrize("kind", ["usb", "", "Process", "process.tree", "#"])
def test_unknown_kind_is_rejected_with_the_valid_ones(kind: str) -> None:
    for function in (topics.task_topic, topics.events_namespace):
        with pytest.raises(errors.InvalidTopic) as info:
            function(kind)
        assert isinstance(info.value, ValueError)
        assert repr(kind) in str(info.value)
        assert "process, network, filesystem, performance" in str(info.value)


def test_hierarchy_table_covers_every_concrete_constant() -> None:
    concrete = {
        value
        for name, value in vars(topics).items()
        if name.isupper() and isinstance(value, str) and "#" not in value and value != topics.EVENTS
    }
    assert concrete == {topic for topic, _ in HIERARCHY}


@pytest.mark.parametrize(("topic", "message"), HIERARCHY, ids=[t for t, _ in HIERARCHY])
def test_registry_decodes_each_hierarchy_payload(topic: str, message: Message) -> None:
    assert topics.payload_type(topic) is type(message)
    decoded = topics.decode_payload(topic, message.SerializeToString())
    assert type(decoded) is type(message)
    assert decoded == message


def test_registry_types() -> None:
    assert topics.payload_type(topics.PROCESS_ANOMALY) is payloads_pb2.ProcessEvent
    assert topics.payload_type(topics.PROCESS_BATCH) is payloads_pb2.ProcessBatch
    assert topics.payload_type(topics.COLLECTOR_LIFECYCLE) is payloads_pb2.CollectorCommand
    assert topics.payload_type(topics.COLLECTOR_CONFIG) is payloads_pb2.ConfigUpdate
    assert topics.payload_type(topics.HEALTH_DIAGNOSTICS) is payloads_pb2.DiagnosticsRequest


@pytest.mark.parametrize(
    "topic",
    [
        "events.network.connection",
        "events.filesystem.write",
        "events.performance.cpu",
        "events.process",
        "events.process.lifecycle.extra",
        topics.PROCESS_ALL,  # a filter, not a topic
        topics.EVENTS,
        "control.collector.task",
        "nothing.here",
    ],
)
def test_unregistered_topics(topic: str) -> None:
    assert topics.payload_type(topic) is None
    with pytest.raises(errors.ProtocolError, match="no payload type is registered"):
        topics.decode_payload(topic, b"")


def test_registry_is_exact_and_case_sensitive() -> None:
    assert topics.payload_type("Events.process.lifecycle") is None
    assert topics.payload_type("events.process.lifecycle ") is None


def test_decode_rejects_bytes_that_do_not_parse() -> None:
    with pytest.raises(errors.ProtocolError, match=r"eventbus\.v1\.Heartbeat") as info:
        topics.decode_payload(topics.HEALTH_HEARTBEAT, b"\xff\xff\xff")
    assert topics.HEALTH_HEARTBEAT in str(info.value)


def test_decode_empty_payload_is_the_default_message() -> None:
    assert topics.decode_payload(topics.HEALTH_STATUS, b"") == payloads_pb2.HealthStatus()


def _fresh_topic() -> str:
    return f"app.test.{uuid.uuid4().hex}"


def test_register_payload_for_an_application_topic() -> None:
    topic = _fresh_topic()
    assert topics.payload_type(topic) is None
    topics.register_payload(topic, payloads_pb2.HealthStatus)
    assert topics.payload_type(topic) is payloads_pb2.HealthStatus
    message = payloads_pb2.HealthStatus(component="app", state=payloads_pb2.HEALTH_STATE_HEALTHY)
    assert topics.decode_payload(topic, message.SerializeToString()) == message
    # Registering the same type again is harmless.
    topics.register_payload(topic, payloads_pb2.HealthStatus)


def test_register_payload_for_a_reserved_namespace() -> None:
    topic = f"events.network.{uuid.uuid4().hex}"
    topics.register_payload(topic, frames_pb2.ProcessIdentity)
    identity = frames_pb2.ProcessIdentity(pid=1, principal="netmond")
    assert topics.decode_payload(topic, identity.SerializeToString()) == identity


def test_register_payload_refuses_to_change_a_type_silently() -> None:
    topic = _fresh_topic()
    topics.register_payload(topic, payloads_pb2.Task)
    with pytest.raises(ValueError, match=r"already carries eventbus\.v1\.Task"):
        topics.register_payload(topic, payloads_pb2.Heartbeat)
    assert topics.payload_type(topic) is payloads_pb2.Task
    topics.register_payload(topic, payloads_pb2.Heartbeat, replace=True)
    assert topics.payload_type(topic) is payloads_pb2.Heartbeat
    with pytest.raises(ValueError, match="already carries"):
        topics.register_payload(topics.PROCESS_LIFECYCLE, payloads_pb2.Task)
    assert topics.payload_type(topics.PROCESS_LIFECYCLE) is payloads_pb2.ProcessEvent


@pytest.mark.parametrize("bad", [payloads_pb2.Task(), dict, "eventbus.v1.Task", None])
def test_register_payload_requires_a_message_class(bad: object) -> None:
    topic = _fresh_topic()
    with pytest.raises(TypeError, match="protobuf Message class"):
        topics.register_payload(topic, bad)  # type: ignore[arg-type]
    assert topics.payload_type(topic) is None
