import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from baton.v1 import common_pb2 as _common_pb2
from baton.v1 import execution_pb2 as _execution_pb2
from baton.v1 import execution_context_pb2 as _execution_context_pb2
from baton.v1 import journey_pb2 as _journey_pb2
from baton.v1 import plan_pb2 as _plan_pb2
from baton.v1 import registry_pb2 as _registry_pb2
from baton.v1 import reports_pb2 as _reports_pb2
from baton.v1 import routing_pb2 as _routing_pb2
from baton.v1 import triggers_pb2 as _triggers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_VIEW_UNSPECIFIED: _ClassVar[WatchView]
    WATCH_VIEW_FULL: _ClassVar[WatchView]
    WATCH_VIEW_EVENTS: _ClassVar[WatchView]
    WATCH_VIEW_STATE_CHANGES: _ClassVar[WatchView]

class OverallHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERALL_HEALTH_UNSPECIFIED: _ClassVar[OverallHealth]
    OVERALL_HEALTH_HEALTHY: _ClassVar[OverallHealth]
    OVERALL_HEALTH_DEGRADED: _ClassVar[OverallHealth]
    OVERALL_HEALTH_CRITICAL: _ClassVar[OverallHealth]
WATCH_VIEW_UNSPECIFIED: WatchView
WATCH_VIEW_FULL: WatchView
WATCH_VIEW_EVENTS: WatchView
WATCH_VIEW_STATE_CHANGES: WatchView
OVERALL_HEALTH_UNSPECIFIED: OverallHealth
OVERALL_HEALTH_HEALTHY: OverallHealth
OVERALL_HEALTH_DEGRADED: OverallHealth
OVERALL_HEALTH_CRITICAL: OverallHealth

class PauseExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "reason")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    reason: str
    def __init__(self, execution_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ResumeExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "reason")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    reason: str
    def __init__(self, execution_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RerunExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "from_step", "reason", "request_id")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    from_step: str
    reason: str
    request_id: str
    def __init__(self, execution_id: _Optional[str] = ..., from_step: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SignalExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "step_id", "signal", "payload", "reason")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    step_id: str
    signal: _execution_pb2.Signal
    payload: _struct_pb2.Struct
    reason: str
    def __init__(self, execution_id: _Optional[str] = ..., step_id: _Optional[str] = ..., signal: _Optional[_Union[_execution_pb2.Signal, str]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class GetStepOutputRequest(_message.Message):
    __slots__ = ("execution_id", "step_id")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    step_id: str
    def __init__(self, execution_id: _Optional[str] = ..., step_id: _Optional[str] = ...) -> None: ...

class StepOutput(_message.Message):
    __slots__ = ("execution_id", "step_id", "output")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    step_id: str
    output: _struct_pb2.Struct
    def __init__(self, execution_id: _Optional[str] = ..., step_id: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ExecuteWorkflowRequest(_message.Message):
    __slots__ = ("workflow_type", "user_context", "execution_options", "callback_url", "request_id", "plan", "execution_context", "workflow_version")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    user_context: _journey_pb2.UserJourney
    execution_options: _journey_pb2.ExecutionOptions
    callback_url: str
    request_id: str
    plan: _plan_pb2.OrchestrationPlan
    execution_context: _execution_context_pb2.ExecutionContext
    workflow_version: str
    def __init__(self, workflow_type: _Optional[str] = ..., user_context: _Optional[_Union[_journey_pb2.UserJourney, _Mapping]] = ..., execution_options: _Optional[_Union[_journey_pb2.ExecutionOptions, _Mapping]] = ..., callback_url: _Optional[str] = ..., request_id: _Optional[str] = ..., plan: _Optional[_Union[_plan_pb2.OrchestrationPlan, _Mapping]] = ..., execution_context: _Optional[_Union[_execution_context_pb2.ExecutionContext, _Mapping]] = ..., workflow_version: _Optional[str] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("execution_id", "plan", "status", "created")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    plan: _plan_pb2.OrchestrationPlan
    status: _execution_pb2.ExecutionState
    created: bool
    def __init__(self, execution_id: _Optional[str] = ..., plan: _Optional[_Union[_plan_pb2.OrchestrationPlan, _Mapping]] = ..., status: _Optional[_Union[_execution_pb2.ExecutionState, str]] = ..., created: _Optional[bool] = ...) -> None: ...

class PlanWorkflowRequest(_message.Message):
    __slots__ = ("workflow_type", "user_context", "execution_options", "workflow_version")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    user_context: _journey_pb2.UserJourney
    execution_options: _journey_pb2.ExecutionOptions
    workflow_version: str
    def __init__(self, workflow_type: _Optional[str] = ..., user_context: _Optional[_Union[_journey_pb2.UserJourney, _Mapping]] = ..., execution_options: _Optional[_Union[_journey_pb2.ExecutionOptions, _Mapping]] = ..., workflow_version: _Optional[str] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class WatchExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "after_sequence", "view")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    after_sequence: int
    view: WatchView
    def __init__(self, execution_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., view: _Optional[_Union[WatchView, str]] = ...) -> None: ...

class ExecutionUpdate(_message.Message):
    __slots__ = ("sequence", "event", "status", "heartbeat")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    event: _execution_pb2.ExecutionEvent
    status: _execution_pb2.ExecutionStatus
    heartbeat: bool
    def __init__(self, sequence: _Optional[int] = ..., event: _Optional[_Union[_execution_pb2.ExecutionEvent, _Mapping]] = ..., status: _Optional[_Union[_execution_pb2.ExecutionStatus, _Mapping]] = ..., heartbeat: _Optional[bool] = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ("user_id", "status", "workflow_type", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    status: _containers.RepeatedScalarFieldContainer[_execution_pb2.ExecutionState]
    workflow_type: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., status: _Optional[_Iterable[_Union[_execution_pb2.ExecutionState, str]]] = ..., workflow_type: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ExecutionSummary(_message.Message):
    __slots__ = ("execution_id", "user_id", "workflow_type", "status", "created_at", "updated_at", "plan_id")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    user_id: str
    workflow_type: str
    status: _execution_pb2.ExecutionState
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    plan_id: str
    def __init__(self, execution_id: _Optional[str] = ..., user_id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., status: _Optional[_Union[_execution_pb2.ExecutionState, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan_id: _Optional[str] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions", "next_page_token")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[ExecutionSummary]
    next_page_token: str
    def __init__(self, executions: _Optional[_Iterable[_Union[ExecutionSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "reason")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    reason: str
    def __init__(self, execution_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetSystemHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResourceUtilization(_message.Message):
    __slots__ = ("cpu", "memory", "storage", "network")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    memory: float
    storage: float
    network: float
    def __init__(self, cpu: _Optional[float] = ..., memory: _Optional[float] = ..., storage: _Optional[float] = ..., network: _Optional[float] = ...) -> None: ...

class SystemHealth(_message.Message):
    __slots__ = ("overall_health", "agent_statuses", "active_workflows", "queue_depth", "resource_utilization", "checked_at", "capacity", "routes")
    class AgentStatusesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.AgentStatus
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.AgentStatus, _Mapping]] = ...) -> None: ...
    class CapacityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: CapacityState
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[CapacityState, _Mapping]] = ...) -> None: ...
    class RoutesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _routing_pb2.AgentRoutes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_routing_pb2.AgentRoutes, _Mapping]] = ...) -> None: ...
    OVERALL_HEALTH_FIELD_NUMBER: _ClassVar[int]
    AGENT_STATUSES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    overall_health: OverallHealth
    agent_statuses: _containers.MessageMap[str, _common_pb2.AgentStatus]
    active_workflows: int
    queue_depth: int
    resource_utilization: ResourceUtilization
    checked_at: _timestamp_pb2.Timestamp
    capacity: _containers.MessageMap[str, CapacityState]
    routes: _containers.MessageMap[str, _routing_pb2.AgentRoutes]
    def __init__(self, overall_health: _Optional[_Union[OverallHealth, str]] = ..., agent_statuses: _Optional[_Mapping[str, _common_pb2.AgentStatus]] = ..., active_workflows: _Optional[int] = ..., queue_depth: _Optional[int] = ..., resource_utilization: _Optional[_Union[ResourceUtilization, _Mapping]] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., capacity: _Optional[_Mapping[str, CapacityState]] = ..., routes: _Optional[_Mapping[str, _routing_pb2.AgentRoutes]] = ...) -> None: ...

class CapacityState(_message.Message):
    __slots__ = ("in_flight", "max_in_flight", "waiting_for_slot", "rate", "tokens", "waiting_for_token", "board_health", "board_quota")
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_SLOT_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_TOKEN_FIELD_NUMBER: _ClassVar[int]
    BOARD_HEALTH_FIELD_NUMBER: _ClassVar[int]
    BOARD_QUOTA_FIELD_NUMBER: _ClassVar[int]
    in_flight: int
    max_in_flight: int
    waiting_for_slot: int
    rate: float
    tokens: float
    waiting_for_token: int
    board_health: str
    board_quota: int
    def __init__(self, in_flight: _Optional[int] = ..., max_in_flight: _Optional[int] = ..., waiting_for_slot: _Optional[int] = ..., rate: _Optional[float] = ..., tokens: _Optional[float] = ..., waiting_for_token: _Optional[int] = ..., board_health: _Optional[str] = ..., board_quota: _Optional[int] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("subject", "execution_id", "user_id", "page_size", "page_token")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject: str
    execution_id: str
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, subject: _Optional[str] = ..., execution_id: _Optional[str] = ..., user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("execution_id", "user_id", "sequence", "time", "actor", "action", "reason")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    user_id: str
    sequence: int
    time: _timestamp_pb2.Timestamp
    actor: _execution_pb2.Actor
    action: str
    reason: str
    def __init__(self, execution_id: _Optional[str] = ..., user_id: _Optional[str] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_execution_pb2.Actor, _Mapping]] = ..., action: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteUserDataRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class DeleteUserDataResponse(_message.Message):
    __slots__ = ("executions_deleted", "events_deleted")
    EXECUTIONS_DELETED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    executions_deleted: int
    events_deleted: int
    def __init__(self, executions_deleted: _Optional[int] = ..., events_deleted: _Optional[int] = ...) -> None: ...
