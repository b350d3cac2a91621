import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from baton.v1 import orchestrator_pb2 as _orchestrator_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SeedExecutionOptions(_message.Message):
    __slots__ = ("priority", "timeout", "quality_level")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    priority: str
    timeout: str
    quality_level: str
    def __init__(self, priority: _Optional[str] = ..., timeout: _Optional[str] = ..., quality_level: _Optional[str] = ...) -> None: ...

class SeedExecuteRequest(_message.Message):
    __slots__ = ("workflow_type", "user_context", "execution_options", "callback_url", "request_id")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    user_context: _struct_pb2.Struct
    execution_options: SeedExecutionOptions
    callback_url: str
    request_id: str
    def __init__(self, workflow_type: _Optional[str] = ..., user_context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., execution_options: _Optional[_Union[SeedExecutionOptions, _Mapping]] = ..., callback_url: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SeedExecution(_message.Message):
    __slots__ = ("execution_id", "plan_id", "workflow_type", "status", "created", "total_steps")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    plan_id: str
    workflow_type: str
    status: str
    created: bool
    total_steps: int
    def __init__(self, execution_id: _Optional[str] = ..., plan_id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., status: _Optional[str] = ..., created: _Optional[bool] = ..., total_steps: _Optional[int] = ...) -> None: ...

class SeedStatusRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class SeedWatchRequest(_message.Message):
    __slots__ = ("execution_id", "after_sequence")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    after_sequence: int
    def __init__(self, execution_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class SeedStatus(_message.Message):
    __slots__ = ("execution_id", "status", "progress", "current_step", "estimated_completion", "quality_score", "sequence", "failure_reason", "heartbeat")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    status: str
    progress: int
    current_step: str
    estimated_completion: _timestamp_pb2.Timestamp
    quality_score: float
    sequence: int
    failure_reason: str
    heartbeat: bool
    def __init__(self, execution_id: _Optional[str] = ..., status: _Optional[str] = ..., progress: _Optional[int] = ..., current_step: _Optional[str] = ..., estimated_completion: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quality_score: _Optional[float] = ..., sequence: _Optional[int] = ..., failure_reason: _Optional[str] = ..., heartbeat: _Optional[bool] = ...) -> None: ...

class SeedHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SeedAgentStatus(_message.Message):
    __slots__ = ("status", "load", "response_time", "error_rate", "queue_depth", "metrics")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    status: str
    load: float
    response_time: float
    error_rate: float
    queue_depth: int
    metrics: _struct_pb2.Struct
    def __init__(self, status: _Optional[str] = ..., load: _Optional[float] = ..., response_time: _Optional[float] = ..., error_rate: _Optional[float] = ..., queue_depth: _Optional[int] = ..., metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SeedHealth(_message.Message):
    __slots__ = ("overall_health", "agent_statuses", "active_workflows", "queue_depth", "resource_utilization", "checked_at")
    class AgentStatusesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SeedAgentStatus
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SeedAgentStatus, _Mapping]] = ...) -> None: ...
    OVERALL_HEALTH_FIELD_NUMBER: _ClassVar[int]
    AGENT_STATUSES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    overall_health: str
    agent_statuses: _containers.MessageMap[str, SeedAgentStatus]
    active_workflows: int
    queue_depth: int
    resource_utilization: _orchestrator_pb2.ResourceUtilization
    checked_at: _timestamp_pb2.Timestamp
    def __init__(self, overall_health: _Optional[str] = ..., agent_statuses: _Optional[_Mapping[str, SeedAgentStatus]] = ..., active_workflows: _Optional[int] = ..., queue_depth: _Optional[int] = ..., resource_utilization: _Optional[_Union[_orchestrator_pb2.ResourceUtilization, _Mapping]] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
