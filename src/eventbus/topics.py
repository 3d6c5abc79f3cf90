"""The topic hierarchy of the monitoring system, and which payload type each topic carries.

```
events.process.{lifecycle,metadata,tree,integrity,anomaly,batch}   procmond -> agent
events.{network,filesystem,performance}.#                         reserved for their collectors
control.collector.{lifecycle,config}                              agent -> collectors
control.collector.task.{process,network,filesystem,performance}   agent -> collector of that kind
control.health.{heartbeat,status}                                 any -> agent
control.health.diagnostics                                        agent -> any (request/reply)
$SYS.#                                                            broker -> agent
```

A subscriber decodes an event without guessing: `decode_payload(envelope.topic,
envelope.payload)` returns the message registered for the topic. Applications register
their own topics with `register_payload`. The topic grammar (validation, wildcard
matching) is not here; see `eventbus.validate_topic` and friends.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, get_args

from google.protobuf.message import DecodeError, Message

from eventbus.errors import InvalidTopic, ProtocolError
from eventbus.v1 import frames_pb2, payloads_pb2

__all__ = [
    "COLLECTOR_CONFIG",
    "COLLECTOR_KINDS",
    "COLLECTOR_LIFECYCLE",
    "EVENTS",
    "EVENTS_ALL",
    "FILESYSTEM_ALL",
    "HEALTH_DIAGNOSTICS",
    "HEALTH_HEARTBEAT",
    "HEALTH_STATUS",
    "NETWORK_ALL",
    "PERFORMANCE_ALL",
    "PRINCIPAL_FOR_KIND",
    "PROCESS_ALL",
    "PROCESS_ANOMALY",
    "PROCESS_BATCH",
    "PROCESS_INTEGRITY",
    "PROCESS_LIFECYCLE",
    "PROCESS_METADATA",
    "PROCESS_TREE",
    "SYS_ALL",
    "SYS_BROKER_STATS",
    "SYS_CLIENT_CONNECTED",
    "SYS_CLIENT_DISCONNECTED",
    "TASK_FILESYSTEM",
    "TASK_NETWORK",
    "TASK_PERFORMANCE",
    "TASK_PROCESS",
    "CollectorKind",
    "decode_payload",
    "events_namespace",
    "payload_type",
    "register_payload",
    "task_topic",
]

# Events: collectors -> agent.
EVENTS: Final = "events"
EVENTS_ALL: Final = "events.#"
PROCESS_LIFECYCLE: Final = "events.process.lifecycle"
PROCESS_METADATA: Final = "events.process.metadata"
PROCESS_TREE: Final = "events.process.tree"
PROCESS_INTEGRITY: Final = "events.process.integrity"
PROCESS_ANOMALY: Final = "events.process.anomaly"
PROCESS_BATCH: Final = "events.process.batch"
PROCESS_ALL: Final = "events.process.#"
NETWORK_ALL: Final = "events.network.#"
FILESYSTEM_ALL: Final = "events.filesystem.#"
PERFORMANCE_ALL: Final = "events.performance.#"

# Control: agent -> collectors.
COLLECTOR_LIFECYCLE: Final = "control.collector.lifecycle"
COLLECTOR_CONFIG: Final = "control.collector.config"
TASK_PROCESS: Final = "control.collector.task.process"
TASK_NETWORK: Final = "control.collector.task.network"
TASK_FILESYSTEM: Final = "control.collector.task.filesystem"
TASK_PERFORMANCE: Final = "control.collector.task.performance"

# Health: heartbeat and status any -> agent; diagnostics agent -> any.
HEALTH_HEARTBEAT: Final = "control.health.heartbeat"
HEALTH_STATUS: Final = "control.health.status"
HEALTH_DIAGNOSTICS: Final = "control.health.diagnostics"

# Published by the broker only.
SYS_ALL: Final = "$SYS.#"
SYS_CLIENT_CONNECTED: Final = "$SYS.client.connected"
SYS_CLIENT_DISCONNECTED: Final = "$SYS.client.disconnected"
SYS_BROKER_STATS: Final = "$SYS.broker.stats"

CollectorKind = Literal["process", "network", "filesystem", "performance"]
"""The kinds of collector; each has its own events namespace and task topic."""

COLLECTOR_KINDS: Final[tuple[CollectorKind, ...]] = get_args(CollectorKind)

PRINCIPAL_FOR_KIND: Final[Mapping[str, str]] = MappingProxyType(
    {
        "process": "procmond",
        "network": "netmond",
        "filesystem": "fsmond",
        "performance": "perfmond",
    }
)
"""The principal the default policy gives the collector of each kind."""


def _check_kind(kind: str) -> None:
    if kind not in COLLECTOR_KINDS:
        raise InvalidTopic(
            f"unknown collector kind {kind!r}: expected one of {', '.join(COLLECTOR_KINDS)}"
        )


def task_topic(kind: str) -> str:
    """The task topic of the collector of `kind`: `task_topic("process")` is
    `"control.collector.task.process"`. Raises InvalidTopic (a ValueError) for an unknown kind.
    """
    _check_kind(kind)
    return f"control.collector.task.{kind}"


def events_namespace(kind: str) -> str:
    """The filter covering every event of `kind`: `events_namespace("network")` is
    `"events.network.#"`. Raises InvalidTopic (a ValueError) for an unknown kind.
    """
    _check_kind(kind)
    return f"events.{kind}.#"


# Exact topic -> payload message class. Wildcard filters are never keys: a subscriber looks
# up the concrete topic of each envelope it receives.
_PAYLOADS: dict[str, type[Message]] = {
    PROCESS_LIFECYCLE: payloads_pb2.ProcessEvent,
    PROCESS_METADATA: payloads_pb2.ProcessEvent,
    PROCESS_TREE: payloads_pb2.ProcessEvent,
    PROCESS_INTEGRITY: payloads_pb2.ProcessEvent,
    PROCESS_ANOMALY: payloads_pb2.ProcessEvent,
    PROCESS_BATCH: payloads_pb2.ProcessBatch,
    COLLECTOR_LIFECYCLE: payloads_pb2.CollectorCommand,
    COLLECTOR_CONFIG: payloads_pb2.ConfigUpdate,
    TASK_PROCESS: payloads_pb2.Task,
    TASK_NETWORK: payloads_pb2.Task,
    TASK_FILESYSTEM: payloads_pb2.Task,
    TASK_PERFORMANCE: payloads_pb2.Task,
    HEALTH_HEARTBEAT: payloads_pb2.Heartbeat,
    HEALTH_STATUS: payloads_pb2.HealthStatus,
    # Replies (DiagnosticsReply) go to the request's reply inbox, not to this topic.
    HEALTH_DIAGNOSTICS: payloads_pb2.DiagnosticsRequest,
    # Broker-published; their schema lives with the wire protocol.
    SYS_CLIENT_CONNECTED: frames_pb2.ClientPresence,
    SYS_CLIENT_DISCONNECTED: frames_pb2.ClientPresence,
    SYS_BROKER_STATS: frames_pb2.BrokerStats,
}


def payload_type(topic: str) -> type[Message] | None:
    """The message class registered for the exact topic `topic`, or None.

    None for topics with no registered schema, including everything under
    `events.network`, `events.filesystem` and `events.performance` until an application
    registers it.
    """
    return _PAYLOADS.get(topic)


def register_payload(topic: str, message_type: type[Message], *, replace: bool = False) -> None:
    """Declare that events on the exact topic `topic` carry `message_type`.

    Registering the same type again does nothing. Registering a different type for a topic
    that already has one raises ValueError unless `replace` is true, so an application cannot
    silently change what a hierarchy topic means. `topic` is a topic name, not a filter: it
    is looked up by equality.
    """
    if not (isinstance(message_type, type) and issubclass(message_type, Message)):
        raise TypeError(f"message_type must be a protobuf Message class, not {message_type!r}")
    current = _PAYLOADS.get(topic)
    if current is not None and current is not message_type and not replace:
        raise ValueError(
            f"topic {topic!r} already carries {current.DESCRIPTOR.full_name}; "
            f"pass replace=True to register {message_type.DESCRIPTOR.full_name} instead"
        )
    _PAYLOADS[topic] = message_type


def decode_payload(topic: str, payload: bytes) -> Message:
    """Parse `payload` as the message registered for `topic`.

    Raises ProtocolError when the topic has no registered type (check `payload_type` first
    to tell that case apart) or when the bytes are not a valid encoding of it. Protobuf
    does not tag messages with their type, so bytes of another message type may still
    parse; the registry is what makes the reading unambiguous.
    """
    message_type = _PAYLOADS.get(topic)
    if message_type is None:
        raise ProtocolError(f"no payload type is registered for topic {topic!r}")
    message = message_type()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise ProtocolError(
            f"payload of {len(payload)} bytes on topic {topic!r} does not parse as "
            f"{message_type.DESCRIPTOR.full_name}: {exc}"
        ) from exc
    return message
