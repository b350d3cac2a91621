import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from baton.v1 import execution_context_pb2 as _execution_context_pb2
from baton.v1 import journey_pb2 as _journey_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TriggerRule(_message.Message):
    __slots__ = ("name", "description", "event_type", "condition", "workflow_type", "user_context", "execution_options", "execution_context", "version", "registered_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    event_type: str
    condition: str
    workflow_type: str
    user_context: _struct_pb2.Struct
    execution_options: _journey_pb2.ExecutionOptions
    execution_context: _execution_context_pb2.ExecutionContext
    version: int
    registered_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., event_type: _Optional[str] = ..., condition: _Optional[str] = ..., workflow_type: _Optional[str] = ..., user_context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., execution_options: _Optional[_Union[_journey_pb2.ExecutionOptions, _Mapping]] = ..., execution_context: _Optional[_Union[_execution_context_pb2.ExecutionContext, _Mapping]] = ..., version: _Optional[int] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterTriggerRuleRequest(_message.Message):
    __slots__ = ("rule", "replace")
    RULE_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    rule: TriggerRule
    replace: bool
    def __init__(self, rule: _Optional[_Union[TriggerRule, _Mapping]] = ..., replace: _Optional[bool] = ...) -> None: ...

class ListTriggerRulesRequest(_message.Message):
    __slots__ = ("event_type",)
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    def __init__(self, event_type: _Optional[str] = ...) -> None: ...

class ListTriggerRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[TriggerRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[TriggerRule, _Mapping]]] = ...) -> None: ...

class DeleteTriggerRuleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTriggerRuleResponse(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: TriggerRule
    def __init__(self, rule: _Optional[_Union[TriggerRule, _Mapping]] = ...) -> None: ...

class PublishEventRequest(_message.Message):
    __slots__ = ("event_id", "event_type", "subject", "payload", "occurred_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_type: str
    subject: str
    payload: _struct_pb2.Struct
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., subject: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PublishEventResponse(_message.Message):
    __slots__ = ("event_id", "duplicate", "executions", "published_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    duplicate: bool
    executions: _containers.RepeatedCompositeFieldContainer[TriggeredExecution]
    published_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., executions: _Optional[_Iterable[_Union[TriggeredExecution, _Mapping]]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TriggeredExecution(_message.Message):
    __slots__ = ("execution_id", "rule", "workflow_type", "created")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    rule: str
    workflow_type: str
    created: bool
    def __init__(self, execution_id: _Optional[str] = ..., rule: _Optional[str] = ..., workflow_type: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class TriggeringEvent(_message.Message):
    __slots__ = ("event_id", "event_type", "subject", "rule", "rule_version", "published_at", "occurred_at")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    RULE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_type: str
    subject: str
    rule: str
    rule_version: int
    published_at: _timestamp_pb2.Timestamp
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., subject: _Optional[str] = ..., rule: _Optional[str] = ..., rule_version: _Optional[int] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
