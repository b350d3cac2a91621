import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetWorkflowReportRequest(_message.Message):
    __slots__ = ("workflow_type", "max_executions")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    max_executions: int
    def __init__(self, workflow_type: _Optional[str] = ..., max_executions: _Optional[int] = ...) -> None: ...

class OperationReport(_message.Message):
    __slots__ = ("agent", "operation", "calls", "retries", "cost", "retry_cost", "unit_cost", "samples", "p50", "p95", "p99")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    RETRY_COST_FIELD_NUMBER: _ClassVar[int]
    UNIT_COST_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P95_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    agent: str
    operation: str
    calls: int
    retries: int
    cost: float
    retry_cost: float
    unit_cost: float
    samples: int
    p50: _duration_pb2.Duration
    p95: _duration_pb2.Duration
    p99: _duration_pb2.Duration
    def __init__(self, agent: _Optional[str] = ..., operation: _Optional[str] = ..., calls: _Optional[int] = ..., retries: _Optional[int] = ..., cost: _Optional[float] = ..., retry_cost: _Optional[float] = ..., unit_cost: _Optional[float] = ..., samples: _Optional[int] = ..., p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CriticalStep(_message.Message):
    __slots__ = ("step_id", "agent", "operation", "mean_duration", "share")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    MEAN_DURATION_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    agent: str
    operation: str
    mean_duration: _duration_pb2.Duration
    share: float
    def __init__(self, step_id: _Optional[str] = ..., agent: _Optional[str] = ..., operation: _Optional[str] = ..., mean_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., share: _Optional[float] = ...) -> None: ...

class WorkflowReport(_message.Message):
    __slots__ = ("workflow_type", "executions", "completed", "failed", "duration_p50", "duration_p95", "total_cost", "mean_cost", "operations", "critical_path", "recommendations")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    DURATION_P50_FIELD_NUMBER: _ClassVar[int]
    DURATION_P95_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    MEAN_COST_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    CRITICAL_PATH_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    executions: int
    completed: int
    failed: int
    duration_p50: _duration_pb2.Duration
    duration_p95: _duration_pb2.Duration
    total_cost: float
    mean_cost: float
    operations: _containers.RepeatedCompositeFieldContainer[OperationReport]
    critical_path: _containers.RepeatedCompositeFieldContainer[CriticalStep]
    recommendations: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workflow_type: _Optional[str] = ..., executions: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., duration_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., duration_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., total_cost: _Optional[float] = ..., mean_cost: _Optional[float] = ..., operations: _Optional[_Iterable[_Union[OperationReport, _Mapping]]] = ..., critical_path: _Optional[_Iterable[_Union[CriticalStep, _Mapping]]] = ..., recommendations: _Optional[_Iterable[str]] = ...) -> None: ...
