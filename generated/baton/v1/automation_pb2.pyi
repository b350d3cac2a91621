import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from baton.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplicationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPLICATION_STATE_UNSPECIFIED: _ClassVar[ApplicationState]
    APPLICATION_STATE_SUBMITTED: _ClassVar[ApplicationState]
    APPLICATION_STATE_WITHDRAWN: _ClassVar[ApplicationState]
APPLICATION_STATE_UNSPECIFIED: ApplicationState
APPLICATION_STATE_SUBMITTED: ApplicationState
APPLICATION_STATE_WITHDRAWN: ApplicationState

class Application(_message.Message):
    __slots__ = ("application_id", "user_id", "job_id", "state", "submitted_at", "idempotency_key", "source")
    APPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    application_id: str
    user_id: str
    job_id: str
    state: ApplicationState
    submitted_at: _timestamp_pb2.Timestamp
    idempotency_key: str
    source: str
    def __init__(self, application_id: _Optional[str] = ..., user_id: _Optional[str] = ..., job_id: _Optional[str] = ..., state: _Optional[_Union[ApplicationState, str]] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class SubmitApplicationRequest(_message.Message):
    __slots__ = ("user_id", "job_ids", "document_id", "cover_note")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    COVER_NOTE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    document_id: str
    cover_note: str
    def __init__(self, user_id: _Optional[str] = ..., job_ids: _Optional[_Iterable[str]] = ..., document_id: _Optional[str] = ..., cover_note: _Optional[str] = ...) -> None: ...

class SubmitApplicationResponse(_message.Message):
    __slots__ = ("applications", "quality")
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    applications: _containers.RepeatedCompositeFieldContainer[Application]
    quality: _common_pb2.Quality
    def __init__(self, applications: _Optional[_Iterable[_Union[Application, _Mapping]]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...

class WithdrawApplicationRequest(_message.Message):
    __slots__ = ("user_id", "application_ids", "reason")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    application_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, user_id: _Optional[str] = ..., application_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class WithdrawApplicationResponse(_message.Message):
    __slots__ = ("applications", "quality")
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    applications: _containers.RepeatedCompositeFieldContainer[Application]
    quality: _common_pb2.Quality
    def __init__(self, applications: _Optional[_Iterable[_Union[Application, _Mapping]]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...

class ListApplicationsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ListApplicationsResponse(_message.Message):
    __slots__ = ("applications", "quality")
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    applications: _containers.RepeatedCompositeFieldContainer[Application]
    quality: _common_pb2.Quality
    def __init__(self, applications: _Optional[_Iterable[_Union[Application, _Mapping]]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ...) -> None: ...
