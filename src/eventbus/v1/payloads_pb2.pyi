from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESS_EVENT_KIND_UNSPECIFIED: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_START: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_STOP: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_EXEC: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_METADATA: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_TREE: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_INTEGRITY: _ClassVar[ProcessEventKind]
    PROCESS_EVENT_KIND_ANOMALY: _ClassVar[ProcessEventKind]

class CollectorAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLLECTOR_ACTION_UNSPECIFIED: _ClassVar[CollectorAction]
    COLLECTOR_ACTION_START: _ClassVar[CollectorAction]
    COLLECTOR_ACTION_STOP: _ClassVar[CollectorAction]
    COLLECTOR_ACTION_RESTART: _ClassVar[CollectorAction]

class HealthState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_STATE_UNSPECIFIED: _ClassVar[HealthState]
    HEALTH_STATE_UNKNOWN: _ClassVar[HealthState]
    HEALTH_STATE_HEALTHY: _ClassVar[HealthState]
    HEALTH_STATE_DEGRADED: _ClassVar[HealthState]
    HEALTH_STATE_UNHEALTHY: _ClassVar[HealthState]
PROCESS_EVENT_KIND_UNSPECIFIED: ProcessEventKind
PROCESS_EVENT_KIND_START: ProcessEventKind
PROCESS_EVENT_KIND_STOP: ProcessEventKind
PROCESS_EVENT_KIND_EXEC: ProcessEventKind
PROCESS_EVENT_KIND_METADATA: ProcessEventKind
PROCESS_EVENT_KIND_TREE: ProcessEventKind
PROCESS_EVENT_KIND_INTEGRITY: ProcessEventKind
PROCESS_EVENT_KIND_ANOMALY: ProcessEventKind
COLLECTOR_ACTION_UNSPECIFIED: CollectorAction
COLLECTOR_ACTION_START: CollectorAction
COLLECTOR_ACTION_STOP: CollectorAction
COLLECTOR_ACTION_RESTART: CollectorAction
HEALTH_STATE_UNSPECIFIED: HealthState
HEALTH_STATE_UNKNOWN: HealthState
HEALTH_STATE_HEALTHY: HealthState
HEALTH_STATE_DEGRADED: HealthState
HEALTH_STATE_UNHEALTHY: HealthState

class ProcessEvent(_message.Message):
    __slots__ = ("kind", "pid", "ppid", "name", "exe", "cmdline", "user", "uid", "start_time_ns", "hashes", "cpu_percent", "rss_bytes", "anomaly_description", "anomaly_score", "collector_id", "observed_ns", "exit_code")
    class HashesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PPID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXE_FIELD_NUMBER: _ClassVar[int]
    CMDLINE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_SCORE_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_NS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    kind: ProcessEventKind
    pid: int
    ppid: int
    name: str
    exe: str
    cmdline: _containers.RepeatedScalarFieldContainer[str]
    user: str
    uid: int
    start_time_ns: int
    hashes: _containers.ScalarMap[str, str]
    cpu_percent: float
    rss_bytes: int
    anomaly_description: str
    anomaly_score: float
    collector_id: str
    observed_ns: int
    exit_code: int
    def __init__(self, kind: _Optional[_Union[ProcessEventKind, str]] = ..., pid: _Optional[int] = ..., ppid: _Optional[int] = ..., name: _Optional[str] = ..., exe: _Optional[str] = ..., cmdline: _Optional[_Iterable[str]] = ..., user: _Optional[str] = ..., uid: _Optional[int] = ..., start_time_ns: _Optional[int] = ..., hashes: _Optional[_Mapping[str, str]] = ..., cpu_percent: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., anomaly_description: _Optional[str] = ..., anomaly_score: _Optional[float] = ..., collector_id: _Optional[str] = ..., observed_ns: _Optional[int] = ..., exit_code: _Optional[int] = ...) -> None: ...

class ProcessBatch(_message.Message):
    __slots__ = ("batch_id", "sequence", "events", "collector_id")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    sequence: int
    events: _containers.RepeatedCompositeFieldContainer[ProcessEvent]
    collector_id: str
    def __init__(self, batch_id: _Optional[str] = ..., sequence: _Optional[int] = ..., events: _Optional[_Iterable[_Union[ProcessEvent, _Mapping]]] = ..., collector_id: _Optional[str] = ...) -> None: ...

class CollectorCommand(_message.Message):
    __slots__ = ("action", "collector_kind", "collector_id", "reason")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_KIND_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    action: CollectorAction
    collector_kind: str
    collector_id: str
    reason: str
    def __init__(self, action: _Optional[_Union[CollectorAction, str]] = ..., collector_kind: _Optional[str] = ..., collector_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ConfigUpdate(_message.Message):
    __slots__ = ("collector_kind", "collector_id", "settings", "version")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COLLECTOR_KIND_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    collector_kind: str
    collector_id: str
    settings: _containers.ScalarMap[str, str]
    version: int
    def __init__(self, collector_kind: _Optional[str] = ..., collector_id: _Optional[str] = ..., settings: _Optional[_Mapping[str, str]] = ..., version: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "collector_kind", "task_type", "parameters", "deadline_ns")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_KIND_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_NS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    collector_kind: str
    task_type: str
    parameters: _containers.ScalarMap[str, str]
    deadline_ns: int
    def __init__(self, task_id: _Optional[str] = ..., collector_kind: _Optional[str] = ..., task_type: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., deadline_ns: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("collector_id", "collector_kind", "pid", "sequence", "timestamp_ns", "uptime_s")
    COLLECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_KIND_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    collector_id: str
    collector_kind: str
    pid: int
    sequence: int
    timestamp_ns: int
    uptime_s: float
    def __init__(self, collector_id: _Optional[str] = ..., collector_kind: _Optional[str] = ..., pid: _Optional[int] = ..., sequence: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., uptime_s: _Optional[float] = ...) -> None: ...

class HealthStatus(_message.Message):
    __slots__ = ("component", "state", "message", "details", "timestamp_ns")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    component: str
    state: HealthState
    message: str
    details: _containers.ScalarMap[str, str]
    timestamp_ns: int
    def __init__(self, component: _Optional[str] = ..., state: _Optional[_Union[HealthState, str]] = ..., message: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ..., timestamp_ns: _Optional[int] = ...) -> None: ...

class DiagnosticsRequest(_message.Message):
    __slots__ = ("request_id", "target", "sections")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    target: str
    sections: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., target: _Optional[str] = ..., sections: _Optional[_Iterable[str]] = ...) -> None: ...

class DiagnosticsReply(_message.Message):
    __slots__ = ("request_id", "component", "data")
    class DataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    component: str
    data: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., component: _Optional[str] = ..., data: _Optional[_Mapping[str, str]] = ...) -> None: ...
