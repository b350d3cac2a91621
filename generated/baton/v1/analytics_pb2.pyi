import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from baton.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AnalyticsEvent(_message.Message):
    __slots__ = ("name", "properties", "time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    properties: _struct_pb2.Struct
    time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("user_id", "events")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    events: _containers.RepeatedCompositeFieldContainer[AnalyticsEvent]
    def __init__(self, user_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[AnalyticsEvent, _Mapping]]] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("recorded", "total_for_user", "quality")
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FOR_USER_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    total_for_user: int
    quality: _common_pb2.Quality
    def __init__(self, recorded: _Optional[int] = ..., total_for_user: _Optional[int] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...

class GetInsightsRequest(_message.Message):
    __slots__ = ("user_id", "match_scores", "skill_gaps")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MATCH_SCORES_FIELD_NUMBER: _ClassVar[int]
    SKILL_GAPS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    match_scores: _containers.RepeatedScalarFieldContainer[float]
    skill_gaps: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., match_scores: _Optional[_Iterable[float]] = ..., skill_gaps: _Optional[_Iterable[str]] = ...) -> None: ...

class Insight(_message.Message):
    __slots__ = ("name", "value", "explanation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    explanation: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., explanation: _Optional[str] = ...) -> None: ...

class GetInsightsResponse(_message.Message):
    __slots__ = ("insights", "recommendations", "quality")
    INSIGHTS_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    insights: _containers.RepeatedCompositeFieldContainer[Insight]
    recommendations: _containers.RepeatedScalarFieldContainer[str]
    quality: _common_pb2.Quality
    def __init__(self, insights: _Optional[_Iterable[_Union[Insight, _Mapping]]] = ..., recommendations: _Optional[_Iterable[str]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...
