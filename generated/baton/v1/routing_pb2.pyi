import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EndpointState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_STATE_UNSPECIFIED: _ClassVar[EndpointState]
    ENDPOINT_STATE_HEALTHY: _ClassVar[EndpointState]
    ENDPOINT_STATE_EJECTED: _ClassVar[EndpointState]
    ENDPOINT_STATE_PROBATION: _ClassVar[EndpointState]
ENDPOINT_STATE_UNSPECIFIED: EndpointState
ENDPOINT_STATE_HEALTHY: EndpointState
ENDPOINT_STATE_EJECTED: EndpointState
ENDPOINT_STATE_PROBATION: EndpointState

class EndpointRoute(_message.Message):
    __slots__ = ("address", "state", "requests", "errors", "in_flight", "latency_ewma", "error_estimate", "ejections", "hedges", "ejected_for")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_EWMA_FIELD_NUMBER: _ClassVar[int]
    ERROR_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    EJECTIONS_FIELD_NUMBER: _ClassVar[int]
    HEDGES_FIELD_NUMBER: _ClassVar[int]
    EJECTED_FOR_FIELD_NUMBER: _ClassVar[int]
    address: str
    state: EndpointState
    requests: int
    errors: int
    in_flight: int
    latency_ewma: _duration_pb2.Duration
    error_estimate: float
    ejections: int
    hedges: int
    ejected_for: _duration_pb2.Duration
    def __init__(self, address: _Optional[str] = ..., state: _Optional[_Union[EndpointState, str]] = ..., requests: _Optional[int] = ..., errors: _Optional[int] = ..., in_flight: _Optional[int] = ..., latency_ewma: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error_estimate: _Optional[float] = ..., ejections: _Optional[int] = ..., hedges: _Optional[int] = ..., ejected_for: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AgentRoutes(_message.Message):
    __slots__ = ("endpoints", "hedges_sent", "hedges_won", "hedges_refused", "ejections_skipped")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    HEDGES_SENT_FIELD_NUMBER: _ClassVar[int]
    HEDGES_WON_FIELD_NUMBER: _ClassVar[int]
    HEDGES_REFUSED_FIELD_NUMBER: _ClassVar[int]
    EJECTIONS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointRoute]
    hedges_sent: int
    hedges_won: int
    hedges_refused: int
    ejections_skipped: int
    def __init__(self, endpoints: _Optional[_Iterable[_Union[EndpointRoute, _Mapping]]] = ..., hedges_sent: _Optional[int] = ..., hedges_won: _Optional[int] = ..., hedges_refused: _Optional[int] = ..., ejections_skipped: _Optional[int] = ...) -> None: ...
