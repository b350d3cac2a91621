import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from baton.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultConfig(_message.Message):
    __slots__ = ("agent", "latency", "error_rate", "error_code", "seed", "fail_next", "crash_after", "operations", "latency_after_effect", "board_health", "board_quota")
    class BoardHealthEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.AccountHealth
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.AccountHealth, str]] = ...) -> None: ...
    class BoardQuotaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    AGENT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    FAIL_NEXT_FIELD_NUMBER: _ClassVar[int]
    CRASH_AFTER_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_AFTER_EFFECT_FIELD_NUMBER: _ClassVar[int]
    BOARD_HEALTH_FIELD_NUMBER: _ClassVar[int]
    BOARD_QUOTA_FIELD_NUMBER: _ClassVar[int]
    agent: str
    latency: _duration_pb2.Duration
    error_rate: float
    error_code: str
    seed: int
    fail_next: int
    crash_after: int
    operations: _containers.RepeatedScalarFieldContainer[str]
    latency_after_effect: _duration_pb2.Duration
    board_health: _containers.ScalarMap[str, _common_pb2.AccountHealth]
    board_quota: _containers.ScalarMap[str, int]
    def __init__(self, agent: _Optional[str] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error_rate: _Optional[float] = ..., error_code: _Optional[str] = ..., seed: _Optional[int] = ..., fail_next: _Optional[int] = ..., crash_after: _Optional[int] = ..., operations: _Optional[_Iterable[str]] = ..., latency_after_effect: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., board_health: _Optional[_Mapping[str, _common_pb2.AccountHealth]] = ..., board_quota: _Optional[_Mapping[str, int]] = ...) -> None: ...

class GetFaultsRequest(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: str
    def __init__(self, agent: _Optional[str] = ...) -> None: ...
