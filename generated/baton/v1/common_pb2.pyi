import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_HEALTH_UNSPECIFIED: _ClassVar[AgentHealth]
    AGENT_HEALTH_HEALTHY: _ClassVar[AgentHealth]
    AGENT_HEALTH_DEGRADED: _ClassVar[AgentHealth]
    AGENT_HEALTH_OFFLINE: _ClassVar[AgentHealth]

class AccountHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_HEALTH_UNSPECIFIED: _ClassVar[AccountHealth]
    ACCOUNT_HEALTH_ACTIVE: _ClassVar[AccountHealth]
    ACCOUNT_HEALTH_LIMITED: _ClassVar[AccountHealth]
    ACCOUNT_HEALTH_SUSPENDED: _ClassVar[AccountHealth]
AGENT_HEALTH_UNSPECIFIED: AgentHealth
AGENT_HEALTH_HEALTHY: AgentHealth
AGENT_HEALTH_DEGRADED: AgentHealth
AGENT_HEALTH_OFFLINE: AgentHealth
ACCOUNT_HEALTH_UNSPECIFIED: AccountHealth
ACCOUNT_HEALTH_ACTIVE: AccountHealth
ACCOUNT_HEALTH_LIMITED: AccountHealth
ACCOUNT_HEALTH_SUSPENDED: AccountHealth

class Quality(_message.Message):
    __slots__ = ("metrics", "score")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.ScalarMap[str, float]
    score: float
    def __init__(self, metrics: _Optional[_Mapping[str, float]] = ..., score: _Optional[float] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("agent", "status", "load", "response_time", "error_rate", "queue_depth", "api_rate_limits", "account_health", "metrics", "requests_served")
    class ApiRateLimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class AccountHealthEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AccountHealth
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AccountHealth, str]] = ...) -> None: ...
    AGENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    API_RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_HEALTH_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_SERVED_FIELD_NUMBER: _ClassVar[int]
    agent: str
    status: AgentHealth
    load: float
    response_time: _duration_pb2.Duration
    error_rate: float
    queue_depth: int
    api_rate_limits: _containers.ScalarMap[str, int]
    account_health: _containers.ScalarMap[str, AccountHealth]
    metrics: _struct_pb2.Struct
    requests_served: int
    def __init__(self, agent: _Optional[str] = ..., status: _Optional[_Union[AgentHealth, str]] = ..., load: _Optional[float] = ..., response_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error_rate: _Optional[float] = ..., queue_depth: _Optional[int] = ..., api_rate_limits: _Optional[_Mapping[str, int]] = ..., account_health: _Optional[_Mapping[str, AccountHealth]] = ..., metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., requests_served: _Optional[int] = ...) -> None: ...
