import datetime

from google.protobuf import any_pb2 as _any_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from baton.v1 import common_pb2 as _common_pb2
from baton.v1 import execution_context_pb2 as _execution_context_pb2
from baton.v1 import journey_pb2 as _journey_pb2
from baton.v1 import plan_pb2 as _plan_pb2
from baton.v1 import triggers_pb2 as _triggers_pb2
from baton.v1 import variants_pb2 as _variants_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecutionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATE_UNSPECIFIED: _ClassVar[ExecutionState]
    EXECUTION_STATE_QUEUED: _ClassVar[ExecutionState]
    EXECUTION_STATE_RUNNING: _ClassVar[ExecutionState]
    EXECUTION_STATE_PAUSED: _ClassVar[ExecutionState]
    EXECUTION_STATE_COMPLETED: _ClassVar[ExecutionState]
    EXECUTION_STATE_FAILED: _ClassVar[ExecutionState]
    EXECUTION_STATE_CANCELLED: _ClassVar[ExecutionState]
    EXECUTION_STATE_COMPENSATING: _ClassVar[ExecutionState]

class StepState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATE_UNSPECIFIED: _ClassVar[StepState]
    STEP_STATE_PENDING: _ClassVar[StepState]
    STEP_STATE_RUNNING: _ClassVar[StepState]
    STEP_STATE_COMPLETED: _ClassVar[StepState]
    STEP_STATE_FAILED: _ClassVar[StepState]
    STEP_STATE_SKIPPED: _ClassVar[StepState]
    STEP_STATE_WAITING: _ClassVar[StepState]

class SkipCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SKIP_CAUSE_UNSPECIFIED: _ClassVar[SkipCause]
    SKIP_CAUSE_CONDITION_FALSE: _ClassVar[SkipCause]
    SKIP_CAUSE_FALLBACK: _ClassVar[SkipCause]
    SKIP_CAUSE_DEGRADED: _ClassVar[SkipCause]
    SKIP_CAUSE_EXECUTION_ENDED: _ClassVar[SkipCause]
    SKIP_CAUSE_APPROVAL_TIMEOUT: _ClassVar[SkipCause]

class EndCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    END_CAUSE_UNSPECIFIED: _ClassVar[EndCause]
    END_CAUSE_STEP_FAILED: _ClassVar[EndCause]
    END_CAUSE_QUALITY_GATE: _ClassVar[EndCause]
    END_CAUSE_TIMEOUT: _ClassVar[EndCause]
    END_CAUSE_CANCELLED: _ClassVar[EndCause]
    END_CAUSE_REJECTED: _ClassVar[EndCause]
    END_CAUSE_INTERNAL_ERROR: _ClassVar[EndCause]
    END_CAUSE_HISTORY_UNREADABLE: _ClassVar[EndCause]
    END_CAUSE_APPROVAL_TIMEOUT: _ClassVar[EndCause]

class Signal(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNAL_UNSPECIFIED: _ClassVar[Signal]
    SIGNAL_APPROVE: _ClassVar[Signal]
    SIGNAL_REJECT: _ClassVar[Signal]
    SIGNAL_INPUT: _ClassVar[Signal]

class WaitKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WAIT_KIND_UNSPECIFIED: _ClassVar[WaitKind]
    WAIT_KIND_APPROVAL: _ClassVar[WaitKind]
    WAIT_KIND_ESCALATION: _ClassVar[WaitKind]
    WAIT_KIND_CAPACITY: _ClassVar[WaitKind]

class CompensationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPENSATION_STATE_UNSPECIFIED: _ClassVar[CompensationState]
    COMPENSATION_STATE_PENDING: _ClassVar[CompensationState]
    COMPENSATION_STATE_RUNNING: _ClassVar[CompensationState]
    COMPENSATION_STATE_SUCCEEDED: _ClassVar[CompensationState]
    COMPENSATION_STATE_FAILED: _ClassVar[CompensationState]
    COMPENSATION_STATE_NOT_NEEDED: _ClassVar[CompensationState]

class Impact(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPACT_UNSPECIFIED: _ClassVar[Impact]
    IMPACT_LOW: _ClassVar[Impact]
    IMPACT_MEDIUM: _ClassVar[Impact]
    IMPACT_HIGH: _ClassVar[Impact]
    IMPACT_CRITICAL: _ClassVar[Impact]

class CallbackState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALLBACK_STATE_UNSPECIFIED: _ClassVar[CallbackState]
    CALLBACK_STATE_PENDING: _ClassVar[CallbackState]
    CALLBACK_STATE_DELIVERED: _ClassVar[CallbackState]
    CALLBACK_STATE_FAILED: _ClassVar[CallbackState]
EXECUTION_STATE_UNSPECIFIED: ExecutionState
EXECUTION_STATE_QUEUED: ExecutionState
EXECUTION_STATE_RUNNING: ExecutionState
EXECUTION_STATE_PAUSED: ExecutionState
EXECUTION_STATE_COMPLETED: ExecutionState
EXECUTION_STATE_FAILED: ExecutionState
EXECUTION_STATE_CANCELLED: ExecutionState
EXECUTION_STATE_COMPENSATING: ExecutionState
STEP_STATE_UNSPECIFIED: StepState
STEP_STATE_PENDING: StepState
STEP_STATE_RUNNING: StepState
STEP_STATE_COMPLETED: StepState
STEP_STATE_FAILED: StepState
STEP_STATE_SKIPPED: StepState
STEP_STATE_WAITING: StepState
SKIP_CAUSE_UNSPECIFIED: SkipCause
SKIP_CAUSE_CONDITION_FALSE: SkipCause
SKIP_CAUSE_FALLBACK: SkipCause
SKIP_CAUSE_DEGRADED: SkipCause
SKIP_CAUSE_EXECUTION_ENDED: SkipCause
SKIP_CAUSE_APPROVAL_TIMEOUT: SkipCause
END_CAUSE_UNSPECIFIED: EndCause
END_CAUSE_STEP_FAILED: EndCause
END_CAUSE_QUALITY_GATE: EndCause
END_CAUSE_TIMEOUT: EndCause
END_CAUSE_CANCELLED: EndCause
END_CAUSE_REJECTED: EndCause
END_CAUSE_INTERNAL_ERROR: EndCause
END_CAUSE_HISTORY_UNREADABLE: EndCause
END_CAUSE_APPROVAL_TIMEOUT: EndCause
SIGNAL_UNSPECIFIED: Signal
SIGNAL_APPROVE: Signal
SIGNAL_REJECT: Signal
SIGNAL_INPUT: Signal
WAIT_KIND_UNSPECIFIED: WaitKind
WAIT_KIND_APPROVAL: WaitKind
WAIT_KIND_ESCALATION: WaitKind
WAIT_KIND_CAPACITY: WaitKind
COMPENSATION_STATE_UNSPECIFIED: CompensationState
COMPENSATION_STATE_PENDING: CompensationState
COMPENSATION_STATE_RUNNING: CompensationState
COMPENSATION_STATE_SUCCEEDED: CompensationState
COMPENSATION_STATE_FAILED: CompensationState
COMPENSATION_STATE_NOT_NEEDED: CompensationState
IMPACT_UNSPECIFIED: Impact
IMPACT_LOW: Impact
IMPACT_MEDIUM: Impact
IMPACT_HIGH: Impact
IMPACT_CRITICAL: Impact
CALLBACK_STATE_UNSPECIFIED: CallbackState
CALLBACK_STATE_PENDING: CallbackState
CALLBACK_STATE_DELIVERED: CallbackState
CALLBACK_STATE_FAILED: CallbackState

class Progress(_message.Message):
    __slots__ = ("current_step", "total_steps", "completion_percentage", "estimated_time_remaining", "running_steps", "estimated_completion")
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_PERCENTAGE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_TIME_REMAINING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_STEPS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    current_step: int
    total_steps: int
    completion_percentage: float
    estimated_time_remaining: _duration_pb2.Duration
    running_steps: _containers.RepeatedScalarFieldContainer[str]
    estimated_completion: _timestamp_pb2.Timestamp
    def __init__(self, current_step: _Optional[int] = ..., total_steps: _Optional[int] = ..., completion_percentage: _Optional[float] = ..., estimated_time_remaining: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., running_steps: _Optional[_Iterable[str]] = ..., estimated_completion: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StepTimingReport(_message.Message):
    __slots__ = ("step_id", "start_time", "end_time", "duration", "status", "attempts", "agent", "operation", "step_name", "compensation", "items_total", "items_done", "items_skipped", "items_failed")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ITEMS_DONE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FAILED_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    status: StepState
    attempts: int
    agent: str
    operation: str
    step_name: str
    compensation: CompensationState
    items_total: int
    items_done: int
    items_skipped: int
    items_failed: int
    def __init__(self, step_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., status: _Optional[_Union[StepState, str]] = ..., attempts: _Optional[int] = ..., agent: _Optional[str] = ..., operation: _Optional[str] = ..., step_name: _Optional[str] = ..., compensation: _Optional[_Union[CompensationState, str]] = ..., items_total: _Optional[int] = ..., items_done: _Optional[int] = ..., items_skipped: _Optional[int] = ..., items_failed: _Optional[int] = ...) -> None: ...

class WaitingStep(_message.Message):
    __slots__ = ("step_id", "kind", "gate_id", "prompt", "data", "since", "timeout_at")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    GATE_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_AT_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    kind: WaitKind
    gate_id: str
    prompt: str
    data: _struct_pb2.Struct
    since: _timestamp_pb2.Timestamp
    timeout_at: _timestamp_pb2.Timestamp
    def __init__(self, step_id: _Optional[str] = ..., kind: _Optional[_Union[WaitKind, str]] = ..., gate_id: _Optional[str] = ..., prompt: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timeout_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompensationReport(_message.Message):
    __slots__ = ("step_id", "state", "agent", "operation", "attempts", "error_message", "item")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    state: CompensationState
    agent: str
    operation: str
    attempts: int
    error_message: str
    item: int
    def __init__(self, step_id: _Optional[str] = ..., state: _Optional[_Union[CompensationState, str]] = ..., agent: _Optional[str] = ..., operation: _Optional[str] = ..., attempts: _Optional[int] = ..., error_message: _Optional[str] = ..., item: _Optional[int] = ...) -> None: ...

class PerformanceMetrics(_message.Message):
    __slots__ = ("start_time", "current_time", "end_time", "total_duration", "step_timings")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DURATION_FIELD_NUMBER: _ClassVar[int]
    STEP_TIMINGS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    current_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    total_duration: _duration_pb2.Duration
    step_timings: _containers.RepeatedCompositeFieldContainer[StepTimingReport]
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., step_timings: _Optional[_Iterable[_Union[StepTimingReport, _Mapping]]] = ...) -> None: ...

class ResourceUsage(_message.Message):
    __slots__ = ("peak_cpu", "peak_memory", "total_network_io", "total_storage_io", "cost_estimate")
    PEAK_CPU_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_NETWORK_IO_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STORAGE_IO_FIELD_NUMBER: _ClassVar[int]
    COST_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    peak_cpu: float
    peak_memory: float
    total_network_io: int
    total_storage_io: int
    cost_estimate: float
    def __init__(self, peak_cpu: _Optional[float] = ..., peak_memory: _Optional[float] = ..., total_network_io: _Optional[int] = ..., total_storage_io: _Optional[int] = ..., cost_estimate: _Optional[float] = ...) -> None: ...

class StepQualityScore(_message.Message):
    __slots__ = ("step_id", "quality_score", "quality_factors")
    class QualityFactorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FACTORS_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    quality_score: float
    quality_factors: _containers.ScalarMap[str, float]
    def __init__(self, step_id: _Optional[str] = ..., quality_score: _Optional[float] = ..., quality_factors: _Optional[_Mapping[str, float]] = ...) -> None: ...

class QualityMetrics(_message.Message):
    __slots__ = ("overall_quality_score", "step_quality_scores", "user_satisfaction_prediction")
    OVERALL_QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    STEP_QUALITY_SCORES_FIELD_NUMBER: _ClassVar[int]
    USER_SATISFACTION_PREDICTION_FIELD_NUMBER: _ClassVar[int]
    overall_quality_score: float
    step_quality_scores: _containers.RepeatedCompositeFieldContainer[StepQualityScore]
    user_satisfaction_prediction: float
    def __init__(self, overall_quality_score: _Optional[float] = ..., step_quality_scores: _Optional[_Iterable[_Union[StepQualityScore, _Mapping]]] = ..., user_satisfaction_prediction: _Optional[float] = ...) -> None: ...

class ErrorDetail(_message.Message):
    __slots__ = ("step_id", "error_type", "error_message", "recovery_action", "impact", "attempt", "user_notified", "item")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_ACTION_FIELD_NUMBER: _ClassVar[int]
    IMPACT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    USER_NOTIFIED_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    error_type: str
    error_message: str
    recovery_action: str
    impact: Impact
    attempt: int
    user_notified: bool
    item: int
    def __init__(self, step_id: _Optional[str] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., recovery_action: _Optional[str] = ..., impact: _Optional[_Union[Impact, str]] = ..., attempt: _Optional[int] = ..., user_notified: _Optional[bool] = ..., item: _Optional[int] = ...) -> None: ...

class ErrorSummary(_message.Message):
    __slots__ = ("total_errors", "critical_errors", "recovered_errors", "error_details")
    TOTAL_ERRORS_FIELD_NUMBER: _ClassVar[int]
    CRITICAL_ERRORS_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_DETAILS_FIELD_NUMBER: _ClassVar[int]
    total_errors: int
    critical_errors: int
    recovered_errors: int
    error_details: _containers.RepeatedCompositeFieldContainer[ErrorDetail]
    def __init__(self, total_errors: _Optional[int] = ..., critical_errors: _Optional[int] = ..., recovered_errors: _Optional[int] = ..., error_details: _Optional[_Iterable[_Union[ErrorDetail, _Mapping]]] = ...) -> None: ...

class Results(_message.Message):
    __slots__ = ("primary_outputs", "intermediate_results", "metadata", "recommendations", "omitted_outputs")
    class OmittedOutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PRIMARY_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    INTERMEDIATE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    OMITTED_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    primary_outputs: _struct_pb2.Struct
    intermediate_results: _struct_pb2.Struct
    metadata: _struct_pb2.Struct
    recommendations: _containers.RepeatedScalarFieldContainer[str]
    omitted_outputs: _containers.ScalarMap[str, int]
    def __init__(self, primary_outputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., intermediate_results: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., recommendations: _Optional[_Iterable[str]] = ..., omitted_outputs: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ExecutionStatus(_message.Message):
    __slots__ = ("execution_id", "plan_id", "status", "progress", "performance_metrics", "resource_usage", "quality_metrics", "error_summary", "results", "user_id", "workflow_type", "degraded", "degraded_reasons", "failure_reason", "last_sequence", "waiting", "compensations", "end_cause", "trace_id", "queue_position", "callback", "run", "trigger", "execution_context", "workflow_version", "variant")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_METRICS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_USAGE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_METRICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASONS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    COMPENSATIONS_FIELD_NUMBER: _ClassVar[int]
    END_CAUSE_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    plan_id: str
    status: ExecutionState
    progress: Progress
    performance_metrics: PerformanceMetrics
    resource_usage: ResourceUsage
    quality_metrics: QualityMetrics
    error_summary: ErrorSummary
    results: Results
    user_id: str
    workflow_type: str
    degraded: bool
    degraded_reasons: _containers.RepeatedScalarFieldContainer[str]
    failure_reason: str
    last_sequence: int
    waiting: _containers.RepeatedCompositeFieldContainer[WaitingStep]
    compensations: _containers.RepeatedCompositeFieldContainer[CompensationReport]
    end_cause: EndCause
    trace_id: str
    queue_position: int
    callback: CallbackReport
    run: int
    trigger: _triggers_pb2.TriggeringEvent
    execution_context: _execution_context_pb2.ExecutionContext
    workflow_version: str
    variant: _variants_pb2.VariantAssignment
    def __init__(self, execution_id: _Optional[str] = ..., plan_id: _Optional[str] = ..., status: _Optional[_Union[ExecutionState, str]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., performance_metrics: _Optional[_Union[PerformanceMetrics, _Mapping]] = ..., resource_usage: _Optional[_Union[ResourceUsage, _Mapping]] = ..., quality_metrics: _Optional[_Union[QualityMetrics, _Mapping]] = ..., error_summary: _Optional[_Union[ErrorSummary, _Mapping]] = ..., results: _Optional[_Union[Results, _Mapping]] = ..., user_id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., degraded: _Optional[bool] = ..., degraded_reasons: _Optional[_Iterable[str]] = ..., failure_reason: _Optional[str] = ..., last_sequence: _Optional[int] = ..., waiting: _Optional[_Iterable[_Union[WaitingStep, _Mapping]]] = ..., compensations: _Optional[_Iterable[_Union[CompensationReport, _Mapping]]] = ..., end_cause: _Optional[_Union[EndCause, str]] = ..., trace_id: _Optional[str] = ..., queue_position: _Optional[int] = ..., callback: _Optional[_Union[CallbackReport, _Mapping]] = ..., run: _Optional[int] = ..., trigger: _Optional[_Union[_triggers_pb2.TriggeringEvent, _Mapping]] = ..., execution_context: _Optional[_Union[_execution_context_pb2.ExecutionContext, _Mapping]] = ..., workflow_version: _Optional[str] = ..., variant: _Optional[_Union[_variants_pb2.VariantAssignment, _Mapping]] = ...) -> None: ...

class CallbackReport(_message.Message):
    __slots__ = ("state", "delivery_id", "attempts", "deadline", "detail")
    STATE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    state: CallbackState
    delivery_id: str
    attempts: int
    deadline: _timestamp_pb2.Timestamp
    detail: str
    def __init__(self, state: _Optional[_Union[CallbackState, str]] = ..., delivery_id: _Optional[str] = ..., attempts: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...

class ExecutionStarted(_message.Message):
    __slots__ = ("plan", "user_context", "execution_options", "callback_url", "request_id", "deadline", "trace_parent", "trigger", "execution_context")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    USER_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    TRACE_PARENT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    plan: _plan_pb2.OrchestrationPlan
    user_context: _journey_pb2.UserJourney
    execution_options: _journey_pb2.ExecutionOptions
    callback_url: str
    request_id: str
    deadline: _timestamp_pb2.Timestamp
    trace_parent: str
    trigger: _triggers_pb2.TriggeringEvent
    execution_context: _execution_context_pb2.ExecutionContext
    def __init__(self, plan: _Optional[_Union[_plan_pb2.OrchestrationPlan, _Mapping]] = ..., user_context: _Optional[_Union[_journey_pb2.UserJourney, _Mapping]] = ..., execution_options: _Optional[_Union[_journey_pb2.ExecutionOptions, _Mapping]] = ..., callback_url: _Optional[str] = ..., request_id: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_parent: _Optional[str] = ..., trigger: _Optional[_Union[_triggers_pb2.TriggeringEvent, _Mapping]] = ..., execution_context: _Optional[_Union[_execution_context_pb2.ExecutionContext, _Mapping]] = ...) -> None: ...

class StepStarted(_message.Message):
    __slots__ = ("step_id", "attempt", "agent", "operation", "idempotency_key", "request", "request_reference")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    REQUEST_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    attempt: int
    agent: str
    operation: str
    idempotency_key: str
    request: _struct_pb2.Struct
    request_reference: PayloadReference
    def __init__(self, step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., agent: _Optional[str] = ..., operation: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., request: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_reference: _Optional[_Union[PayloadReference, _Mapping]] = ...) -> None: ...

class StepAttemptFailed(_message.Message):
    __slots__ = ("step_id", "attempt", "error_type", "error_message", "retry_at", "request_bytes", "circuit_wait")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_WAIT_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    attempt: int
    error_type: str
    error_message: str
    retry_at: _timestamp_pb2.Timestamp
    request_bytes: int
    circuit_wait: bool
    def __init__(self, step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., retry_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_bytes: _Optional[int] = ..., circuit_wait: _Optional[bool] = ...) -> None: ...

class StepSucceeded(_message.Message):
    __slots__ = ("step_id", "attempt", "output", "quality", "request_bytes", "response_bytes")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BYTES_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    attempt: int
    output: _any_pb2.Any
    quality: _common_pb2.Quality
    request_bytes: int
    response_bytes: int
    def __init__(self, step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., output: _Optional[_Union[_any_pb2.Any, _Mapping]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ..., request_bytes: _Optional[int] = ..., response_bytes: _Optional[int] = ...) -> None: ...

class StepFailed(_message.Message):
    __slots__ = ("step_id", "error_type", "error_message", "fallback_action")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_ACTION_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    error_type: str
    error_message: str
    fallback_action: _plan_pb2.FallbackAction
    def __init__(self, step_id: _Optional[str] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., fallback_action: _Optional[_Union[_plan_pb2.FallbackAction, str]] = ...) -> None: ...

class StepSkipped(_message.Message):
    __slots__ = ("step_id", "reason", "cause")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    reason: str
    cause: SkipCause
    def __init__(self, step_id: _Optional[str] = ..., reason: _Optional[str] = ..., cause: _Optional[_Union[SkipCause, str]] = ...) -> None: ...

class CallbackScheduled(_message.Message):
    __slots__ = ("delivery_id", "callback_url", "deadline")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    callback_url: str
    deadline: _timestamp_pb2.Timestamp
    def __init__(self, delivery_id: _Optional[str] = ..., callback_url: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CallbackDelivered(_message.Message):
    __slots__ = ("delivery_id", "attempts", "detail")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    attempts: int
    detail: str
    def __init__(self, delivery_id: _Optional[str] = ..., attempts: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class CallbackFailed(_message.Message):
    __slots__ = ("delivery_id", "attempts", "detail")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    attempts: int
    detail: str
    def __init__(self, delivery_id: _Optional[str] = ..., attempts: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class ExecutionCompleted(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExecutionFailed(_message.Message):
    __slots__ = ("reason", "step_id", "error_type", "cause", "compensation_summary")
    REASON_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    reason: str
    step_id: str
    error_type: str
    cause: EndCause
    compensation_summary: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reason: _Optional[str] = ..., step_id: _Optional[str] = ..., error_type: _Optional[str] = ..., cause: _Optional[_Union[EndCause, str]] = ..., compensation_summary: _Optional[_Iterable[str]] = ...) -> None: ...

class ExecutionCancelled(_message.Message):
    __slots__ = ("reason", "cause", "compensation_summary")
    REASON_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    reason: str
    cause: EndCause
    compensation_summary: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reason: _Optional[str] = ..., cause: _Optional[_Union[EndCause, str]] = ..., compensation_summary: _Optional[_Iterable[str]] = ...) -> None: ...

class ExecutionUnwinding(_message.Message):
    __slots__ = ("outcome", "cause", "reason", "step_id", "error_type")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    outcome: ExecutionState
    cause: EndCause
    reason: str
    step_id: str
    error_type: str
    def __init__(self, outcome: _Optional[_Union[ExecutionState, str]] = ..., cause: _Optional[_Union[EndCause, str]] = ..., reason: _Optional[str] = ..., step_id: _Optional[str] = ..., error_type: _Optional[str] = ...) -> None: ...

class ExecutionPaused(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ExecutionResumed(_message.Message):
    __slots__ = ("reason", "deadline")
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    deadline: _timestamp_pb2.Timestamp
    def __init__(self, reason: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SignalReceived(_message.Message):
    __slots__ = ("step_id", "signal", "payload", "reason")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    signal: Signal
    payload: _struct_pb2.Struct
    reason: str
    def __init__(self, step_id: _Optional[str] = ..., signal: _Optional[_Union[Signal, str]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class StepWaiting(_message.Message):
    __slots__ = ("step_id", "kind", "gate_id", "prompt", "data", "timeout_at")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    GATE_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_AT_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    kind: WaitKind
    gate_id: str
    prompt: str
    data: _struct_pb2.Struct
    timeout_at: _timestamp_pb2.Timestamp
    def __init__(self, step_id: _Optional[str] = ..., kind: _Optional[_Union[WaitKind, str]] = ..., gate_id: _Optional[str] = ..., prompt: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., timeout_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompensationStarted(_message.Message):
    __slots__ = ("step_id", "attempt", "agent", "operation", "idempotency_key", "item")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    attempt: int
    agent: str
    operation: str
    idempotency_key: str
    item: int
    def __init__(self, step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., agent: _Optional[str] = ..., operation: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., item: _Optional[int] = ...) -> None: ...

class CompensationAttemptFailed(_message.Message):
    __slots__ = ("step_id", "attempt", "error_type", "error_message", "retry_at", "item")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    attempt: int
    error_type: str
    error_message: str
    retry_at: _timestamp_pb2.Timestamp
    item: int
    def __init__(self, step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., retry_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., item: _Optional[int] = ...) -> None: ...

class CompensationSucceeded(_message.Message):
    __slots__ = ("step_id", "attempt", "output", "item")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    attempt: int
    output: _any_pb2.Any
    item: int
    def __init__(self, step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., output: _Optional[_Union[_any_pb2.Any, _Mapping]] = ..., item: _Optional[int] = ...) -> None: ...

class CompensationSettled(_message.Message):
    __slots__ = ("step_id", "state", "reason", "item")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    state: CompensationState
    reason: str
    item: int
    def __init__(self, step_id: _Optional[str] = ..., state: _Optional[_Union[CompensationState, str]] = ..., reason: _Optional[str] = ..., item: _Optional[int] = ...) -> None: ...

class StepMapStarted(_message.Message):
    __slots__ = ("step_id", "item_count")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    item_count: int
    def __init__(self, step_id: _Optional[str] = ..., item_count: _Optional[int] = ...) -> None: ...

class StepItemStarted(_message.Message):
    __slots__ = ("step_id", "item", "attempt", "agent", "operation", "idempotency_key", "request", "request_reference")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    REQUEST_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    item: int
    attempt: int
    agent: str
    operation: str
    idempotency_key: str
    request: _struct_pb2.Struct
    request_reference: PayloadReference
    def __init__(self, step_id: _Optional[str] = ..., item: _Optional[int] = ..., attempt: _Optional[int] = ..., agent: _Optional[str] = ..., operation: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., request: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_reference: _Optional[_Union[PayloadReference, _Mapping]] = ...) -> None: ...

class StepItemAttemptFailed(_message.Message):
    __slots__ = ("step_id", "item", "attempt", "error_type", "error_message", "retry_at", "request_bytes")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    item: int
    attempt: int
    error_type: str
    error_message: str
    retry_at: _timestamp_pb2.Timestamp
    request_bytes: int
    def __init__(self, step_id: _Optional[str] = ..., item: _Optional[int] = ..., attempt: _Optional[int] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., retry_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_bytes: _Optional[int] = ...) -> None: ...

class PayloadReference(_message.Message):
    __slots__ = ("sha256", "size_bytes", "type_url")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TYPE_URL_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size_bytes: int
    type_url: str
    def __init__(self, sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., type_url: _Optional[str] = ...) -> None: ...

class StepItemSucceeded(_message.Message):
    __slots__ = ("step_id", "item", "attempt", "output", "quality", "request_bytes", "response_bytes")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BYTES_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    item: int
    attempt: int
    output: _any_pb2.Any
    quality: _common_pb2.Quality
    request_bytes: int
    response_bytes: int
    def __init__(self, step_id: _Optional[str] = ..., item: _Optional[int] = ..., attempt: _Optional[int] = ..., output: _Optional[_Union[_any_pb2.Any, _Mapping]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ..., request_bytes: _Optional[int] = ..., response_bytes: _Optional[int] = ...) -> None: ...

class StepItemFailed(_message.Message):
    __slots__ = ("step_id", "item", "error_type", "error_message", "item_failure")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ITEM_FAILURE_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    item: int
    error_type: str
    error_message: str
    item_failure: _plan_pb2.ItemFailure
    def __init__(self, step_id: _Optional[str] = ..., item: _Optional[int] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., item_failure: _Optional[_Union[_plan_pb2.ItemFailure, str]] = ...) -> None: ...

class StepDelayed(_message.Message):
    __slots__ = ("step_id", "start_at")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    start_at: _timestamp_pb2.Timestamp
    def __init__(self, step_id: _Optional[str] = ..., start_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GateEvaluated(_message.Message):
    __slots__ = ("gate_id", "checkpoint", "score", "passed", "action", "details")
    GATE_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    gate_id: str
    checkpoint: str
    score: float
    passed: bool
    action: _plan_pb2.GateAction
    details: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, gate_id: _Optional[str] = ..., checkpoint: _Optional[str] = ..., score: _Optional[float] = ..., passed: _Optional[bool] = ..., action: _Optional[_Union[_plan_pb2.GateAction, str]] = ..., details: _Optional[_Iterable[str]] = ...) -> None: ...

class ExecutionRerun(_message.Message):
    __slots__ = ("from_step", "reason", "reset_steps", "run", "deadline", "request_id")
    FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESET_STEPS_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    from_step: str
    reason: str
    reset_steps: _containers.RepeatedScalarFieldContainer[str]
    run: int
    deadline: _timestamp_pb2.Timestamp
    request_id: str
    def __init__(self, from_step: _Optional[str] = ..., reason: _Optional[str] = ..., reset_steps: _Optional[_Iterable[str]] = ..., run: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Actor(_message.Message):
    __slots__ = ("subject", "roles", "peer", "claimed_user")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_USER_FIELD_NUMBER: _ClassVar[int]
    subject: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    peer: str
    claimed_user: str
    def __init__(self, subject: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., peer: _Optional[str] = ..., claimed_user: _Optional[str] = ...) -> None: ...

class ExecutionEvent(_message.Message):
    __slots__ = ("sequence", "time", "actor", "execution_started", "step_started", "step_attempt_failed", "step_succeeded", "step_failed", "step_skipped", "execution_completed", "execution_failed", "execution_cancelled", "step_delayed", "gate_evaluated", "execution_unwinding", "execution_paused", "execution_resumed", "signal_received", "step_waiting", "compensation_started", "compensation_attempt_failed", "compensation_succeeded", "compensation_settled", "callback_scheduled", "callback_delivered", "callback_failed", "execution_rerun", "step_map_started", "step_item_started", "step_item_attempt_failed", "step_item_succeeded", "step_item_failed")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_ATTEMPT_FAILED_FIELD_NUMBER: _ClassVar[int]
    STEP_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    STEP_FAILED_FIELD_NUMBER: _ClassVar[int]
    STEP_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FAILED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    STEP_DELAYED_FIELD_NUMBER: _ClassVar[int]
    GATE_EVALUATED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_UNWINDING_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PAUSED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_RESUMED_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    STEP_WAITING_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_STARTED_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_ATTEMPT_FAILED_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_SETTLED_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FAILED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_RERUN_FIELD_NUMBER: _ClassVar[int]
    STEP_MAP_STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_ITEM_STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_ITEM_ATTEMPT_FAILED_FIELD_NUMBER: _ClassVar[int]
    STEP_ITEM_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    STEP_ITEM_FAILED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    actor: Actor
    execution_started: ExecutionStarted
    step_started: StepStarted
    step_attempt_failed: StepAttemptFailed
    step_succeeded: StepSucceeded
    step_failed: StepFailed
    step_skipped: StepSkipped
    execution_completed: ExecutionCompleted
    execution_failed: ExecutionFailed
    execution_cancelled: ExecutionCancelled
    step_delayed: StepDelayed
    gate_evaluated: GateEvaluated
    execution_unwinding: ExecutionUnwinding
    execution_paused: ExecutionPaused
    execution_resumed: ExecutionResumed
    signal_received: SignalReceived
    step_waiting: StepWaiting
    compensation_started: CompensationStarted
    compensation_attempt_failed: CompensationAttemptFailed
    compensation_succeeded: CompensationSucceeded
    compensation_settled: CompensationSettled
    callback_scheduled: CallbackScheduled
    callback_delivered: CallbackDelivered
    callback_failed: CallbackFailed
    execution_rerun: ExecutionRerun
    step_map_started: StepMapStarted
    step_item_started: StepItemStarted
    step_item_attempt_failed: StepItemAttemptFailed
    step_item_succeeded: StepItemSucceeded
    step_item_failed: StepItemFailed
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[Actor, _Mapping]] = ..., execution_started: _Optional[_Union[ExecutionStarted, _Mapping]] = ..., step_started: _Optional[_Union[StepStarted, _Mapping]] = ..., step_attempt_failed: _Optional[_Union[StepAttemptFailed, _Mapping]] = ..., step_succeeded: _Optional[_Union[StepSucceeded, _Mapping]] = ..., step_failed: _Optional[_Union[StepFailed, _Mapping]] = ..., step_skipped: _Optional[_Union[StepSkipped, _Mapping]] = ..., execution_completed: _Optional[_Union[ExecutionCompleted, _Mapping]] = ..., execution_failed: _Optional[_Union[ExecutionFailed, _Mapping]] = ..., execution_cancelled: _Optional[_Union[ExecutionCancelled, _Mapping]] = ..., step_delayed: _Optional[_Union[StepDelayed, _Mapping]] = ..., gate_evaluated: _Optional[_Union[GateEvaluated, _Mapping]] = ..., execution_unwinding: _Optional[_Union[ExecutionUnwinding, _Mapping]] = ..., execution_paused: _Optional[_Union[ExecutionPaused, _Mapping]] = ..., execution_resumed: _Optional[_Union[ExecutionResumed, _Mapping]] = ..., signal_received: _Optional[_Union[SignalReceived, _Mapping]] = ..., step_waiting: _Optional[_Union[StepWaiting, _Mapping]] = ..., compensation_started: _Optional[_Union[CompensationStarted, _Mapping]] = ..., compensation_attempt_failed: _Optional[_Union[CompensationAttemptFailed, _Mapping]] = ..., compensation_succeeded: _Optional[_Union[CompensationSucceeded, _Mapping]] = ..., compensation_settled: _Optional[_Union[CompensationSettled, _Mapping]] = ..., callback_scheduled: _Optional[_Union[CallbackScheduled, _Mapping]] = ..., callback_delivered: _Optional[_Union[CallbackDelivered, _Mapping]] = ..., callback_failed: _Optional[_Union[CallbackFailed, _Mapping]] = ..., execution_rerun: _Optional[_Union[ExecutionRerun, _Mapping]] = ..., step_map_started: _Optional[_Union[StepMapStarted, _Mapping]] = ..., step_item_started: _Optional[_Union[StepItemStarted, _Mapping]] = ..., step_item_attempt_failed: _Optional[_Union[StepItemAttemptFailed, _Mapping]] = ..., step_item_succeeded: _Optional[_Union[StepItemSucceeded, _Mapping]] = ..., step_item_failed: _Optional[_Union[StepItemFailed, _Mapping]] = ...) -> None: ...
