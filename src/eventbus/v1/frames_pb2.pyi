from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_PROTOCOL: _ClassVar[ErrorCode]
    ERROR_CODE_FRAME_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_HELLO_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_UNSUPPORTED_VERSION: _ClassVar[ErrorCode]
    ERROR_CODE_UNAUTHENTICATED: _ClassVar[ErrorCode]
    ERROR_CODE_PERMISSION_DENIED: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_TOPIC: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_NO_RESPONDERS: _ClassVar[ErrorCode]
    ERROR_CODE_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_SLOW_CONSUMER: _ClassVar[ErrorCode]
    ERROR_CODE_SHUTTING_DOWN: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
    ERROR_CODE_QUOTA_EXCEEDED: _ClassVar[ErrorCode]
    ERROR_CODE_KICKED: _ClassVar[ErrorCode]
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_PROTOCOL: ErrorCode
ERROR_CODE_FRAME_TOO_LARGE: ErrorCode
ERROR_CODE_HELLO_TIMEOUT: ErrorCode
ERROR_CODE_UNSUPPORTED_VERSION: ErrorCode
ERROR_CODE_UNAUTHENTICATED: ErrorCode
ERROR_CODE_PERMISSION_DENIED: ErrorCode
ERROR_CODE_INVALID_TOPIC: ErrorCode
ERROR_CODE_NOT_FOUND: ErrorCode
ERROR_CODE_NO_RESPONDERS: ErrorCode
ERROR_CODE_TIMEOUT: ErrorCode
ERROR_CODE_SLOW_CONSUMER: ErrorCode
ERROR_CODE_SHUTTING_DOWN: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode
ERROR_CODE_QUOTA_EXCEEDED: ErrorCode
ERROR_CODE_KICKED: ErrorCode

class ProcessIdentity(_message.Message):
    __slots__ = ("pid", "uid", "gid", "principal", "connection_id", "client_name", "instance_id", "sequence", "stream_started_ns")
    PID_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STREAM_STARTED_NS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    uid: int
    gid: int
    principal: str
    connection_id: int
    client_name: str
    instance_id: int
    sequence: int
    stream_started_ns: int
    def __init__(self, pid: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., principal: _Optional[str] = ..., connection_id: _Optional[int] = ..., client_name: _Optional[str] = ..., instance_id: _Optional[int] = ..., sequence: _Optional[int] = ..., stream_started_ns: _Optional[int] = ...) -> None: ...

class CorrelationMetadata(_message.Message):
    __slots__ = ("correlation_id", "parent_id", "root_id", "sequence", "workflow_stage", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_STAGE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    parent_id: str
    root_id: str
    sequence: int
    workflow_stage: str
    tags: _containers.ScalarMap[str, str]
    def __init__(self, correlation_id: _Optional[str] = ..., parent_id: _Optional[str] = ..., root_id: _Optional[str] = ..., sequence: _Optional[int] = ..., workflow_stage: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Rights(_message.Message):
    __slots__ = ("publish", "subscribe", "admin", "rule_set")
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    RULE_SET_FIELD_NUMBER: _ClassVar[int]
    publish: _containers.RepeatedScalarFieldContainer[str]
    subscribe: _containers.RepeatedScalarFieldContainer[str]
    admin: bool
    rule_set: str
    def __init__(self, publish: _Optional[_Iterable[str]] = ..., subscribe: _Optional[_Iterable[str]] = ..., admin: bool = ..., rule_set: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_frame_bytes", "max_topic_bytes", "max_topic_levels", "max_outbound_bytes", "heartbeat_interval_ms")
    MAX_FRAME_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOPIC_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOPIC_LEVELS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTBOUND_BYTES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    max_frame_bytes: int
    max_topic_bytes: int
    max_topic_levels: int
    max_outbound_bytes: int
    heartbeat_interval_ms: int
    def __init__(self, max_frame_bytes: _Optional[int] = ..., max_topic_bytes: _Optional[int] = ..., max_topic_levels: _Optional[int] = ..., max_outbound_bytes: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("protocol_version", "principal", "client_name", "heartbeat_interval_ms", "options", "instance_id")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    principal: str
    client_name: str
    heartbeat_interval_ms: int
    options: _containers.ScalarMap[str, str]
    instance_id: int
    def __init__(self, protocol_version: _Optional[int] = ..., principal: _Optional[str] = ..., client_name: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., options: _Optional[_Mapping[str, str]] = ..., instance_id: _Optional[int] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("protocol_version", "connection_id", "identity", "rights", "limits", "broker_name")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    RIGHTS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    BROKER_NAME_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    connection_id: int
    identity: ProcessIdentity
    rights: Rights
    limits: Limits
    broker_name: str
    def __init__(self, protocol_version: _Optional[int] = ..., connection_id: _Optional[int] = ..., identity: _Optional[_Union[ProcessIdentity, _Mapping]] = ..., rights: _Optional[_Union[Rights, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., broker_name: _Optional[str] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("request_id", "filter", "group")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    filter: str
    group: str
    def __init__(self, request_id: _Optional[int] = ..., filter: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class SubAck(_message.Message):
    __slots__ = ("request_id", "subscription_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    subscription_id: int
    def __init__(self, request_id: _Optional[int] = ..., subscription_id: _Optional[int] = ...) -> None: ...

class Unsubscribe(_message.Message):
    __slots__ = ("request_id", "subscription_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    subscription_id: int
    def __init__(self, request_id: _Optional[int] = ..., subscription_id: _Optional[int] = ...) -> None: ...

class UnsubAck(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    def __init__(self, request_id: _Optional[int] = ...) -> None: ...

class Publish(_message.Message):
    __slots__ = ("request_id", "topic", "payload", "correlation", "reply_to", "sequence", "stream_started_ns")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STREAM_STARTED_NS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    topic: str
    payload: bytes
    correlation: CorrelationMetadata
    reply_to: str
    sequence: int
    stream_started_ns: int
    def __init__(self, request_id: _Optional[int] = ..., topic: _Optional[str] = ..., payload: _Optional[bytes] = ..., correlation: _Optional[_Union[CorrelationMetadata, _Mapping]] = ..., reply_to: _Optional[str] = ..., sequence: _Optional[int] = ..., stream_started_ns: _Optional[int] = ...) -> None: ...

class PubAck(_message.Message):
    __slots__ = ("request_id", "delivered", "dropped")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    delivered: int
    dropped: int
    def __init__(self, request_id: _Optional[int] = ..., delivered: _Optional[int] = ..., dropped: _Optional[int] = ...) -> None: ...

class EventEnvelope(_message.Message):
    __slots__ = ("topic", "payload", "timestamp_ns", "publisher", "correlation", "reply_to")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    topic: str
    payload: bytes
    timestamp_ns: int
    publisher: ProcessIdentity
    correlation: CorrelationMetadata
    reply_to: str
    def __init__(self, topic: _Optional[str] = ..., payload: _Optional[bytes] = ..., timestamp_ns: _Optional[int] = ..., publisher: _Optional[_Union[ProcessIdentity, _Mapping]] = ..., correlation: _Optional[_Union[CorrelationMetadata, _Mapping]] = ..., reply_to: _Optional[str] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: int
    def __init__(self, nonce: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: int
    def __init__(self, nonce: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("request_id", "code", "message")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    code: ErrorCode
    message: str
    def __init__(self, request_id: _Optional[int] = ..., code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class SubscriptionInfo(_message.Message):
    __slots__ = ("subscription_id", "filter", "group")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    subscription_id: int
    filter: str
    group: str
    def __init__(self, subscription_id: _Optional[int] = ..., filter: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class ClientInfo(_message.Message):
    __slots__ = ("identity", "subscriptions", "messages_in", "messages_out", "dropped", "queued_bytes", "connected_at_ns", "bytes_in", "bytes_out", "denied")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_IN_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_OUT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    BYTES_IN_FIELD_NUMBER: _ClassVar[int]
    BYTES_OUT_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    identity: ProcessIdentity
    subscriptions: _containers.RepeatedCompositeFieldContainer[SubscriptionInfo]
    messages_in: int
    messages_out: int
    dropped: int
    queued_bytes: int
    connected_at_ns: int
    bytes_in: int
    bytes_out: int
    denied: int
    def __init__(self, identity: _Optional[_Union[ProcessIdentity, _Mapping]] = ..., subscriptions: _Optional[_Iterable[_Union[SubscriptionInfo, _Mapping]]] = ..., messages_in: _Optional[int] = ..., messages_out: _Optional[int] = ..., dropped: _Optional[int] = ..., queued_bytes: _Optional[int] = ..., connected_at_ns: _Optional[int] = ..., bytes_in: _Optional[int] = ..., bytes_out: _Optional[int] = ..., denied: _Optional[int] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("request_id", "all_clients")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    all_clients: bool
    def __init__(self, request_id: _Optional[int] = ..., all_clients: bool = ...) -> None: ...

class ListReply(_message.Message):
    __slots__ = ("request_id", "clients")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    clients: _containers.RepeatedCompositeFieldContainer[ClientInfo]
    def __init__(self, request_id: _Optional[int] = ..., clients: _Optional[_Iterable[_Union[ClientInfo, _Mapping]]] = ...) -> None: ...

class Kick(_message.Message):
    __slots__ = ("request_id", "connection_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    connection_id: int
    reason: str
    def __init__(self, request_id: _Optional[int] = ..., connection_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class KickReply(_message.Message):
    __slots__ = ("request_id", "client")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    client: ClientInfo
    def __init__(self, request_id: _Optional[int] = ..., client: _Optional[_Union[ClientInfo, _Mapping]] = ...) -> None: ...

class DroppedStream(_message.Message):
    __slots__ = ("instance_id", "topic", "count")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    instance_id: int
    topic: str
    count: int
    def __init__(self, instance_id: _Optional[int] = ..., topic: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Dropped(_message.Message):
    __slots__ = ("count", "total", "streams")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    count: int
    total: int
    streams: _containers.RepeatedCompositeFieldContainer[DroppedStream]
    def __init__(self, count: _Optional[int] = ..., total: _Optional[int] = ..., streams: _Optional[_Iterable[_Union[DroppedStream, _Mapping]]] = ...) -> None: ...

class Goodbye(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("hello", "welcome", "subscribe", "sub_ack", "unsubscribe", "unsub_ack", "publish", "pub_ack", "event", "ping", "pong", "error", "list_request", "list_reply", "dropped", "goodbye", "kick", "kick_reply")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    SUB_ACK_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    UNSUB_ACK_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    PUB_ACK_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LIST_REQUEST_FIELD_NUMBER: _ClassVar[int]
    LIST_REPLY_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    KICK_FIELD_NUMBER: _ClassVar[int]
    KICK_REPLY_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    welcome: Welcome
    subscribe: Subscribe
    sub_ack: SubAck
    unsubscribe: Unsubscribe
    unsub_ack: UnsubAck
    publish: Publish
    pub_ack: PubAck
    event: EventEnvelope
    ping: Ping
    pong: Pong
    error: Error
    list_request: ListRequest
    list_reply: ListReply
    dropped: Dropped
    goodbye: Goodbye
    kick: Kick
    kick_reply: KickReply
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., sub_ack: _Optional[_Union[SubAck, _Mapping]] = ..., unsubscribe: _Optional[_Union[Unsubscribe, _Mapping]] = ..., unsub_ack: _Optional[_Union[UnsubAck, _Mapping]] = ..., publish: _Optional[_Union[Publish, _Mapping]] = ..., pub_ack: _Optional[_Union[PubAck, _Mapping]] = ..., event: _Optional[_Union[EventEnvelope, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., list_request: _Optional[_Union[ListRequest, _Mapping]] = ..., list_reply: _Optional[_Union[ListReply, _Mapping]] = ..., dropped: _Optional[_Union[Dropped, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., kick: _Optional[_Union[Kick, _Mapping]] = ..., kick_reply: _Optional[_Union[KickReply, _Mapping]] = ...) -> None: ...

class ClientPresence(_message.Message):
    __slots__ = ("identity", "reason", "subscriptions", "dropped")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    identity: ProcessIdentity
    reason: str
    subscriptions: _containers.RepeatedCompositeFieldContainer[SubscriptionInfo]
    dropped: int
    def __init__(self, identity: _Optional[_Union[ProcessIdentity, _Mapping]] = ..., reason: _Optional[str] = ..., subscriptions: _Optional[_Iterable[_Union[SubscriptionInfo, _Mapping]]] = ..., dropped: _Optional[int] = ...) -> None: ...

class BrokerStats(_message.Message):
    __slots__ = ("timestamp_ns", "clients", "subscriptions", "messages_in", "messages_out", "dropped", "bytes_in", "bytes_out", "queued_bytes", "clients_detail")
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_IN_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_OUT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    BYTES_IN_FIELD_NUMBER: _ClassVar[int]
    BYTES_OUT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_DETAIL_FIELD_NUMBER: _ClassVar[int]
    timestamp_ns: int
    clients: int
    subscriptions: int
    messages_in: int
    messages_out: int
    dropped: int
    bytes_in: int
    bytes_out: int
    queued_bytes: int
    clients_detail: _containers.RepeatedCompositeFieldContainer[ClientInfo]
    def __init__(self, timestamp_ns: _Optional[int] = ..., clients: _Optional[int] = ..., subscriptions: _Optional[int] = ..., messages_in: _Optional[int] = ..., messages_out: _Optional[int] = ..., dropped: _Optional[int] = ..., bytes_in: _Optional[int] = ..., bytes_out: _Optional[int] = ..., queued_bytes: _Optional[int] = ..., clients_detail: _Optional[_Iterable[_Union[ClientInfo, _Mapping]]] = ...) -> None: ...
