import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from baton.v1 import plan_pb2 as _plan_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JourneyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOURNEY_TYPE_UNSPECIFIED: _ClassVar[JourneyType]
    JOURNEY_TYPE_ONBOARDING: _ClassVar[JourneyType]
    JOURNEY_TYPE_JOB_SEARCH: _ClassVar[JourneyType]
    JOURNEY_TYPE_APPLICATION: _ClassVar[JourneyType]
    JOURNEY_TYPE_MONITORING: _ClassVar[JourneyType]
    JOURNEY_TYPE_OPTIMIZATION: _ClassVar[JourneyType]

class EntryPoint(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_POINT_UNSPECIFIED: _ClassVar[EntryPoint]
    ENTRY_POINT_WEB: _ClassVar[EntryPoint]
    ENTRY_POINT_MOBILE: _ClassVar[EntryPoint]
    ENTRY_POINT_API: _ClassVar[EntryPoint]
    ENTRY_POINT_EMAIL: _ClassVar[EntryPoint]

class UserIntent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USER_INTENT_UNSPECIFIED: _ClassVar[UserIntent]
    USER_INTENT_EXPLORE: _ClassVar[UserIntent]
    USER_INTENT_APPLY: _ClassVar[UserIntent]
    USER_INTENT_OPTIMIZE: _ClassVar[UserIntent]
    USER_INTENT_MONITOR: _ClassVar[UserIntent]

class UrgencyLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    URGENCY_LEVEL_UNSPECIFIED: _ClassVar[UrgencyLevel]
    URGENCY_LEVEL_LOW: _ClassVar[UrgencyLevel]
    URGENCY_LEVEL_MEDIUM: _ClassVar[UrgencyLevel]
    URGENCY_LEVEL_HIGH: _ClassVar[UrgencyLevel]
    URGENCY_LEVEL_CRITICAL: _ClassVar[UrgencyLevel]

class ComplexityLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLEXITY_LEVEL_UNSPECIFIED: _ClassVar[ComplexityLevel]
    COMPLEXITY_LEVEL_SIMPLE: _ClassVar[ComplexityLevel]
    COMPLEXITY_LEVEL_MODERATE: _ClassVar[ComplexityLevel]
    COMPLEXITY_LEVEL_COMPLEX: _ClassVar[ComplexityLevel]
    COMPLEXITY_LEVEL_EXPERT: _ClassVar[ComplexityLevel]

class AutomationLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTOMATION_LEVEL_UNSPECIFIED: _ClassVar[AutomationLevel]
    AUTOMATION_LEVEL_MANUAL: _ClassVar[AutomationLevel]
    AUTOMATION_LEVEL_SEMI_AUTOMATIC: _ClassVar[AutomationLevel]
    AUTOMATION_LEVEL_FULLY_AUTOMATIC: _ClassVar[AutomationLevel]

class CommunicationStyle(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMUNICATION_STYLE_UNSPECIFIED: _ClassVar[CommunicationStyle]
    COMMUNICATION_STYLE_MINIMAL: _ClassVar[CommunicationStyle]
    COMMUNICATION_STYLE_STANDARD: _ClassVar[CommunicationStyle]
    COMMUNICATION_STYLE_DETAILED: _ClassVar[CommunicationStyle]

class ProcessingSpeed(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESSING_SPEED_UNSPECIFIED: _ClassVar[ProcessingSpeed]
    PROCESSING_SPEED_THOROUGH: _ClassVar[ProcessingSpeed]
    PROCESSING_SPEED_BALANCED: _ClassVar[ProcessingSpeed]
    PROCESSING_SPEED_FAST: _ClassVar[ProcessingSpeed]

class DocumentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_STATUS_UNSPECIFIED: _ClassVar[DocumentStatus]
    DOCUMENT_STATUS_UPLOADED: _ClassVar[DocumentStatus]
    DOCUMENT_STATUS_PROCESSING: _ClassVar[DocumentStatus]
    DOCUMENT_STATUS_ANALYZED: _ClassVar[DocumentStatus]
    DOCUMENT_STATUS_OPTIMIZED: _ClassVar[DocumentStatus]

class QualityLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUALITY_LEVEL_UNSPECIFIED: _ClassVar[QualityLevel]
    QUALITY_LEVEL_FAST: _ClassVar[QualityLevel]
    QUALITY_LEVEL_BALANCED: _ClassVar[QualityLevel]
    QUALITY_LEVEL_THOROUGH: _ClassVar[QualityLevel]
JOURNEY_TYPE_UNSPECIFIED: JourneyType
JOURNEY_TYPE_ONBOARDING: JourneyType
JOURNEY_TYPE_JOB_SEARCH: JourneyType
JOURNEY_TYPE_APPLICATION: JourneyType
JOURNEY_TYPE_MONITORING: JourneyType
JOURNEY_TYPE_OPTIMIZATION: JourneyType
ENTRY_POINT_UNSPECIFIED: EntryPoint
ENTRY_POINT_WEB: EntryPoint
ENTRY_POINT_MOBILE: EntryPoint
ENTRY_POINT_API: EntryPoint
ENTRY_POINT_EMAIL: EntryPoint
USER_INTENT_UNSPECIFIED: UserIntent
USER_INTENT_EXPLORE: UserIntent
USER_INTENT_APPLY: UserIntent
USER_INTENT_OPTIMIZE: UserIntent
USER_INTENT_MONITOR: UserIntent
URGENCY_LEVEL_UNSPECIFIED: UrgencyLevel
URGENCY_LEVEL_LOW: UrgencyLevel
URGENCY_LEVEL_MEDIUM: UrgencyLevel
URGENCY_LEVEL_HIGH: UrgencyLevel
URGENCY_LEVEL_CRITICAL: UrgencyLevel
COMPLEXITY_LEVEL_UNSPECIFIED: ComplexityLevel
COMPLEXITY_LEVEL_SIMPLE: ComplexityLevel
COMPLEXITY_LEVEL_MODERATE: ComplexityLevel
COMPLEXITY_LEVEL_COMPLEX: ComplexityLevel
COMPLEXITY_LEVEL_EXPERT: ComplexityLevel
AUTOMATION_LEVEL_UNSPECIFIED: AutomationLevel
AUTOMATION_LEVEL_MANUAL: AutomationLevel
AUTOMATION_LEVEL_SEMI_AUTOMATIC: AutomationLevel
AUTOMATION_LEVEL_FULLY_AUTOMATIC: AutomationLevel
COMMUNICATION_STYLE_UNSPECIFIED: CommunicationStyle
COMMUNICATION_STYLE_MINIMAL: CommunicationStyle
COMMUNICATION_STYLE_STANDARD: CommunicationStyle
COMMUNICATION_STYLE_DETAILED: CommunicationStyle
PROCESSING_SPEED_UNSPECIFIED: ProcessingSpeed
PROCESSING_SPEED_THOROUGH: ProcessingSpeed
PROCESSING_SPEED_BALANCED: ProcessingSpeed
PROCESSING_SPEED_FAST: ProcessingSpeed
DOCUMENT_STATUS_UNSPECIFIED: DocumentStatus
DOCUMENT_STATUS_UPLOADED: DocumentStatus
DOCUMENT_STATUS_PROCESSING: DocumentStatus
DOCUMENT_STATUS_ANALYZED: DocumentStatus
DOCUMENT_STATUS_OPTIMIZED: DocumentStatus
QUALITY_LEVEL_UNSPECIFIED: QualityLevel
QUALITY_LEVEL_FAST: QualityLevel
QUALITY_LEVEL_BALANCED: QualityLevel
QUALITY_LEVEL_THOROUGH: QualityLevel

class UserPreferences(_message.Message):
    __slots__ = ("automation_level", "communication_style", "processing_speed")
    AUTOMATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    COMMUNICATION_STYLE_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_SPEED_FIELD_NUMBER: _ClassVar[int]
    automation_level: AutomationLevel
    communication_style: CommunicationStyle
    processing_speed: ProcessingSpeed
    def __init__(self, automation_level: _Optional[_Union[AutomationLevel, str]] = ..., communication_style: _Optional[_Union[CommunicationStyle, str]] = ..., processing_speed: _Optional[_Union[ProcessingSpeed, str]] = ...) -> None: ...

class JourneyContext(_message.Message):
    __slots__ = ("entry_point", "user_intent", "urgency_level", "complexity_level", "user_preferences")
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    USER_INTENT_FIELD_NUMBER: _ClassVar[int]
    URGENCY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    COMPLEXITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    USER_PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    entry_point: EntryPoint
    user_intent: UserIntent
    urgency_level: UrgencyLevel
    complexity_level: ComplexityLevel
    user_preferences: UserPreferences
    def __init__(self, entry_point: _Optional[_Union[EntryPoint, str]] = ..., user_intent: _Optional[_Union[UserIntent, str]] = ..., urgency_level: _Optional[_Union[UrgencyLevel, str]] = ..., complexity_level: _Optional[_Union[ComplexityLevel, str]] = ..., user_preferences: _Optional[_Union[UserPreferences, _Mapping]] = ...) -> None: ...

class CurrentDataState(_message.Message):
    __slots__ = ("profile_completeness", "document_status", "job_search_active", "applications_in_progress", "pending_responses")
    PROFILE_COMPLETENESS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    JOB_SEARCH_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    APPLICATIONS_IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PENDING_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    profile_completeness: float
    document_status: DocumentStatus
    job_search_active: bool
    applications_in_progress: int
    pending_responses: int
    def __init__(self, profile_completeness: _Optional[float] = ..., document_status: _Optional[_Union[DocumentStatus, str]] = ..., job_search_active: _Optional[bool] = ..., applications_in_progress: _Optional[int] = ..., pending_responses: _Optional[int] = ...) -> None: ...

class UserJourney(_message.Message):
    __slots__ = ("user_id", "session_id", "journey_type", "current_step", "journey_context", "current_data_state", "data")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    JOURNEY_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_DATA_STATE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    session_id: str
    journey_type: JourneyType
    current_step: str
    journey_context: JourneyContext
    current_data_state: CurrentDataState
    data: _struct_pb2.Struct
    def __init__(self, user_id: _Optional[str] = ..., session_id: _Optional[str] = ..., journey_type: _Optional[_Union[JourneyType, str]] = ..., current_step: _Optional[str] = ..., journey_context: _Optional[_Union[JourneyContext, _Mapping]] = ..., current_data_state: _Optional[_Union[CurrentDataState, _Mapping]] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ExecutionOptions(_message.Message):
    __slots__ = ("priority", "timeout", "quality_level")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    priority: _plan_pb2.Priority
    timeout: _duration_pb2.Duration
    quality_level: QualityLevel
    def __init__(self, priority: _Optional[_Union[_plan_pb2.Priority, str]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., quality_level: _Optional[_Union[QualityLevel, str]] = ...) -> None: ...
