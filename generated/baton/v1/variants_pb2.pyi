import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VariantAssignment(_message.Message):
    __slots__ = ("name", "experiment", "weight", "total_weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    experiment: str
    weight: int
    total_weight: int
    def __init__(self, name: _Optional[str] = ..., experiment: _Optional[str] = ..., weight: _Optional[int] = ..., total_weight: _Optional[int] = ...) -> None: ...

class VariantReport(_message.Message):
    __slots__ = ("experiment", "name", "workflow_version", "executions", "completed", "completion_rate", "duration_samples", "duration_p50", "duration_p95", "quality_samples", "quality")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_RATE_FIELD_NUMBER: _ClassVar[int]
    DURATION_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DURATION_P50_FIELD_NUMBER: _ClassVar[int]
    DURATION_P95_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    name: str
    workflow_version: str
    executions: int
    completed: int
    completion_rate: float
    duration_samples: int
    duration_p50: _duration_pb2.Duration
    duration_p95: _duration_pb2.Duration
    quality_samples: int
    quality: float
    def __init__(self, experiment: _Optional[str] = ..., name: _Optional[str] = ..., workflow_version: _Optional[str] = ..., executions: _Optional[int] = ..., completed: _Optional[int] = ..., completion_rate: _Optional[float] = ..., duration_samples: _Optional[int] = ..., duration_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., duration_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., quality_samples: _Optional[int] = ..., quality: _Optional[float] = ...) -> None: ...
