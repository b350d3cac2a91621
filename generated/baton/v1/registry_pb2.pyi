import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkflowDefinitionInfo(_message.Message):
    __slots__ = ("workflow_type", "version", "description", "definition_yaml", "digest", "builtin", "deprecated", "registered_at", "registered_by", "deprecated_at", "deprecation_reason", "latest", "problem", "step_ids")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_YAML_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    DEPRECATED_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BY_FIELD_NUMBER: _ClassVar[int]
    DEPRECATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEPRECATION_REASON_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    STEP_IDS_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    version: str
    description: str
    definition_yaml: str
    digest: str
    builtin: bool
    deprecated: bool
    registered_at: _timestamp_pb2.Timestamp
    registered_by: str
    deprecated_at: _timestamp_pb2.Timestamp
    deprecation_reason: str
    latest: bool
    problem: str
    step_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workflow_type: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., definition_yaml: _Optional[str] = ..., digest: _Optional[str] = ..., builtin: _Optional[bool] = ..., deprecated: _Optional[bool] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., registered_by: _Optional[str] = ..., deprecated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deprecation_reason: _Optional[str] = ..., latest: _Optional[bool] = ..., problem: _Optional[str] = ..., step_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterWorkflowRequest(_message.Message):
    __slots__ = ("definition_yaml", "version")
    DEFINITION_YAML_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    definition_yaml: str
    version: str
    def __init__(self, definition_yaml: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class RegisterWorkflowResponse(_message.Message):
    __slots__ = ("workflow", "created")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    workflow: WorkflowDefinitionInfo
    created: bool
    def __init__(self, workflow: _Optional[_Union[WorkflowDefinitionInfo, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("workflow_type", "version")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    version: str
    def __init__(self, workflow_type: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("workflow_type",)
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    def __init__(self, workflow_type: _Optional[str] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows",)
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[WorkflowDefinitionInfo]
    def __init__(self, workflows: _Optional[_Iterable[_Union[WorkflowDefinitionInfo, _Mapping]]] = ...) -> None: ...

class DeprecateWorkflowRequest(_message.Message):
    __slots__ = ("workflow_type", "version", "reason")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    version: str
    reason: str
    def __init__(self, workflow_type: _Optional[str] = ..., version: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
