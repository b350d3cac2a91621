from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Environment(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENVIRONMENT_UNSPECIFIED: _ClassVar[Environment]
    ENVIRONMENT_PRODUCTION: _ClassVar[Environment]
    ENVIRONMENT_STAGING: _ClassVar[Environment]
    ENVIRONMENT_DEVELOPMENT: _ClassVar[Environment]

class Toggle(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOGGLE_UNSPECIFIED: _ClassVar[Toggle]
    TOGGLE_ENABLED: _ClassVar[Toggle]
    TOGGLE_DISABLED: _ClassVar[Toggle]
ENVIRONMENT_UNSPECIFIED: Environment
ENVIRONMENT_PRODUCTION: Environment
ENVIRONMENT_STAGING: Environment
ENVIRONMENT_DEVELOPMENT: Environment
TOGGLE_UNSPECIFIED: Toggle
TOGGLE_ENABLED: Toggle
TOGGLE_DISABLED: Toggle

class ExecutionContext(_message.Message):
    __slots__ = ("environment", "feature_flags", "resource_allocation", "monitoring")
    class FeatureFlagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bool
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bool] = ...) -> None: ...
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FLAGS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    MONITORING_FIELD_NUMBER: _ClassVar[int]
    environment: Environment
    feature_flags: _containers.ScalarMap[str, bool]
    resource_allocation: ResourceAllocation
    monitoring: Monitoring
    def __init__(self, environment: _Optional[_Union[Environment, str]] = ..., feature_flags: _Optional[_Mapping[str, bool]] = ..., resource_allocation: _Optional[_Union[ResourceAllocation, _Mapping]] = ..., monitoring: _Optional[_Union[Monitoring, _Mapping]] = ...) -> None: ...

class ResourceAllocation(_message.Message):
    __slots__ = ("reserved_capacity", "auto_scaling", "priority_queues")
    RESERVED_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    AUTO_SCALING_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_QUEUES_FIELD_NUMBER: _ClassVar[int]
    reserved_capacity: int
    auto_scaling: Toggle
    priority_queues: Toggle
    def __init__(self, reserved_capacity: _Optional[int] = ..., auto_scaling: _Optional[_Union[Toggle, str]] = ..., priority_queues: _Optional[_Union[Toggle, str]] = ...) -> None: ...

class Monitoring(_message.Message):
    __slots__ = ("metrics_collection", "alerting", "tracing", "profiling")
    METRICS_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ALERTING_FIELD_NUMBER: _ClassVar[int]
    TRACING_FIELD_NUMBER: _ClassVar[int]
    PROFILING_FIELD_NUMBER: _ClassVar[int]
    metrics_collection: Toggle
    alerting: Toggle
    tracing: Toggle
    profiling: Toggle
    def __init__(self, metrics_collection: _Optional[_Union[Toggle, str]] = ..., alerting: _Optional[_Union[Toggle, str]] = ..., tracing: _Optional[_Union[Toggle, str]] = ..., profiling: _Optional[_Union[Toggle, str]] = ...) -> None: ...
