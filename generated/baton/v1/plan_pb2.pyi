import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecutionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_MODE_UNSPECIFIED: _ClassVar[ExecutionMode]
    EXECUTION_MODE_SEQUENTIAL: _ClassVar[ExecutionMode]
    EXECUTION_MODE_PARALLEL: _ClassVar[ExecutionMode]
    EXECUTION_MODE_HYBRID: _ClassVar[ExecutionMode]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_LOW: _ClassVar[Priority]
    PRIORITY_MEDIUM: _ClassVar[Priority]
    PRIORITY_HIGH: _ClassVar[Priority]
    PRIORITY_CRITICAL: _ClassVar[Priority]

class BackoffStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKOFF_STRATEGY_UNSPECIFIED: _ClassVar[BackoffStrategy]
    BACKOFF_STRATEGY_LINEAR: _ClassVar[BackoffStrategy]
    BACKOFF_STRATEGY_EXPONENTIAL: _ClassVar[BackoffStrategy]
    BACKOFF_STRATEGY_CUSTOM: _ClassVar[BackoffStrategy]

class CircuitBreakerMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CIRCUIT_BREAKER_MODE_UNSPECIFIED: _ClassVar[CircuitBreakerMode]
    CIRCUIT_BREAKER_MODE_ENABLED: _ClassVar[CircuitBreakerMode]
    CIRCUIT_BREAKER_MODE_DISABLED: _ClassVar[CircuitBreakerMode]

class ItemFailure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_FAILURE_UNSPECIFIED: _ClassVar[ItemFailure]
    ITEM_FAILURE_FAIL_STEP: _ClassVar[ItemFailure]
    ITEM_FAILURE_SKIP_ITEM: _ClassVar[ItemFailure]

class StepKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_KIND_UNSPECIFIED: _ClassVar[StepKind]
    STEP_KIND_CALL: _ClassVar[StepKind]
    STEP_KIND_APPROVAL: _ClassVar[StepKind]

class ApprovalTimeoutAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_TIMEOUT_ACTION_UNSPECIFIED: _ClassVar[ApprovalTimeoutAction]
    APPROVAL_TIMEOUT_ACTION_FAIL: _ClassVar[ApprovalTimeoutAction]
    APPROVAL_TIMEOUT_ACTION_SKIP: _ClassVar[ApprovalTimeoutAction]
    APPROVAL_TIMEOUT_ACTION_APPROVE: _ClassVar[ApprovalTimeoutAction]

class Scheduling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCHEDULING_UNSPECIFIED: _ClassVar[Scheduling]
    SCHEDULING_IMMEDIATE: _ClassVar[Scheduling]
    SCHEDULING_SCHEDULED: _ClassVar[Scheduling]
    SCHEDULING_CONDITIONAL: _ClassVar[Scheduling]

class EstimateSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESTIMATE_SOURCE_UNSPECIFIED: _ClassVar[EstimateSource]
    ESTIMATE_SOURCE_DECLARED: _ClassVar[EstimateSource]
    ESTIMATE_SOURCE_HISTORY: _ClassVar[EstimateSource]

class FallbackAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FALLBACK_ACTION_UNSPECIFIED: _ClassVar[FallbackAction]
    FALLBACK_ACTION_SKIP: _ClassVar[FallbackAction]
    FALLBACK_ACTION_ALTERNATIVE: _ClassVar[FallbackAction]
    FALLBACK_ACTION_FAIL: _ClassVar[FallbackAction]

class ComparisonOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPARISON_OPERATOR_UNSPECIFIED: _ClassVar[ComparisonOperator]
    COMPARISON_OPERATOR_GT: _ClassVar[ComparisonOperator]
    COMPARISON_OPERATOR_LT: _ClassVar[ComparisonOperator]
    COMPARISON_OPERATOR_EQ: _ClassVar[ComparisonOperator]
    COMPARISON_OPERATOR_GTE: _ClassVar[ComparisonOperator]
    COMPARISON_OPERATOR_LTE: _ClassVar[ComparisonOperator]

class GateAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GATE_ACTION_UNSPECIFIED: _ClassVar[GateAction]
    GATE_ACTION_STOP: _ClassVar[GateAction]
    GATE_ACTION_CONTINUE_DEGRADED: _ClassVar[GateAction]
    GATE_ACTION_RETRY: _ClassVar[GateAction]
    GATE_ACTION_ESCALATE: _ClassVar[GateAction]
EXECUTION_MODE_UNSPECIFIED: ExecutionMode
EXECUTION_MODE_SEQUENTIAL: ExecutionMode
EXECUTION_MODE_PARALLEL: ExecutionMode
EXECUTION_MODE_HYBRID: ExecutionMode
PRIORITY_UNSPECIFIED: Priority
PRIORITY_LOW: Priority
PRIORITY_MEDIUM: Priority
PRIORITY_HIGH: Priority
PRIORITY_CRITICAL: Priority
BACKOFF_STRATEGY_UNSPECIFIED: BackoffStrategy
BACKOFF_STRATEGY_LINEAR: BackoffStrategy
BACKOFF_STRATEGY_EXPONENTIAL: BackoffStrategy
BACKOFF_STRATEGY_CUSTOM: BackoffStrategy
CIRCUIT_BREAKER_MODE_UNSPECIFIED: CircuitBreakerMode
CIRCUIT_BREAKER_MODE_ENABLED: CircuitBreakerMode
CIRCUIT_BREAKER_MODE_DISABLED: CircuitBreakerMode
ITEM_FAILURE_UNSPECIFIED: ItemFailure
ITEM_FAILURE_FAIL_STEP: ItemFailure
ITEM_FAILURE_SKIP_ITEM: ItemFailure
STEP_KIND_UNSPECIFIED: StepKind
STEP_KIND_CALL: StepKind
STEP_KIND_APPROVAL: StepKind
APPROVAL_TIMEOUT_ACTION_UNSPECIFIED: ApprovalTimeoutAction
APPROVAL_TIMEOUT_ACTION_FAIL: ApprovalTimeoutAction
APPROVAL_TIMEOUT_ACTION_SKIP: ApprovalTimeoutAction
APPROVAL_TIMEOUT_ACTION_APPROVE: ApprovalTimeoutAction
SCHEDULING_UNSPECIFIED: Scheduling
SCHEDULING_IMMEDIATE: Scheduling
SCHEDULING_SCHEDULED: Scheduling
SCHEDULING_CONDITIONAL: Scheduling
ESTIMATE_SOURCE_UNSPECIFIED: EstimateSource
ESTIMATE_SOURCE_DECLARED: EstimateSource
ESTIMATE_SOURCE_HISTORY: EstimateSource
FALLBACK_ACTION_UNSPECIFIED: FallbackAction
FALLBACK_ACTION_SKIP: FallbackAction
FALLBACK_ACTION_ALTERNATIVE: FallbackAction
FALLBACK_ACTION_FAIL: FallbackAction
COMPARISON_OPERATOR_UNSPECIFIED: ComparisonOperator
COMPARISON_OPERATOR_GT: ComparisonOperator
COMPARISON_OPERATOR_LT: ComparisonOperator
COMPARISON_OPERATOR_EQ: ComparisonOperator
COMPARISON_OPERATOR_GTE: ComparisonOperator
COMPARISON_OPERATOR_LTE: ComparisonOperator
GATE_ACTION_UNSPECIFIED: GateAction
GATE_ACTION_STOP: GateAction
GATE_ACTION_CONTINUE_DEGRADED: GateAction
GATE_ACTION_RETRY: GateAction
GATE_ACTION_ESCALATE: GateAction

class OrchestrationPlan(_message.Message):
    __slots__ = ("plan_id", "user_id", "workflow_type", "created_at", "estimated_duration", "complexity_score", "resource_requirements", "execution_strategy", "workflow_steps", "quality_gates", "workflow_version", "timeout", "unit_costs")
    class UnitCostsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_DURATION_FIELD_NUMBER: _ClassVar[int]
    COMPLEXITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_STEPS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_GATES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    UNIT_COSTS_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    user_id: str
    workflow_type: str
    created_at: _timestamp_pb2.Timestamp
    estimated_duration: _duration_pb2.Duration
    complexity_score: float
    resource_requirements: ResourceRequirements
    execution_strategy: ExecutionStrategy
    workflow_steps: _containers.RepeatedCompositeFieldContainer[WorkflowStep]
    quality_gates: _containers.RepeatedCompositeFieldContainer[QualityGate]
    workflow_version: str
    timeout: _duration_pb2.Duration
    unit_costs: _containers.ScalarMap[str, float]
    def __init__(self, plan_id: _Optional[str] = ..., user_id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., estimated_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., complexity_score: _Optional[float] = ..., resource_requirements: _Optional[_Union[ResourceRequirements, _Mapping]] = ..., execution_strategy: _Optional[_Union[ExecutionStrategy, _Mapping]] = ..., workflow_steps: _Optional[_Iterable[_Union[WorkflowStep, _Mapping]]] = ..., quality_gates: _Optional[_Iterable[_Union[QualityGate, _Mapping]]] = ..., workflow_version: _Optional[str] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., unit_costs: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ResourceRequirements(_message.Message):
    __slots__ = ("cpu_intensive", "memory_intensive", "network_intensive", "storage_intensive")
    CPU_INTENSIVE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_INTENSIVE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_INTENSIVE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_INTENSIVE_FIELD_NUMBER: _ClassVar[int]
    cpu_intensive: bool
    memory_intensive: bool
    network_intensive: bool
    storage_intensive: bool
    def __init__(self, cpu_intensive: _Optional[bool] = ..., memory_intensive: _Optional[bool] = ..., network_intensive: _Optional[bool] = ..., storage_intensive: _Optional[bool] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_retries", "backoff_strategy", "circuit_breaker", "initial_backoff", "max_backoff", "backoff_multiplier", "jitter", "custom_backoffs", "max_circuit_waits")
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKER_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_BACKOFFS_FIELD_NUMBER: _ClassVar[int]
    MAX_CIRCUIT_WAITS_FIELD_NUMBER: _ClassVar[int]
    max_retries: int
    backoff_strategy: BackoffStrategy
    circuit_breaker: CircuitBreakerMode
    initial_backoff: _duration_pb2.Duration
    max_backoff: _duration_pb2.Duration
    backoff_multiplier: float
    jitter: float
    custom_backoffs: _containers.RepeatedCompositeFieldContainer[_duration_pb2.Duration]
    max_circuit_waits: int
    def __init__(self, max_retries: _Optional[int] = ..., backoff_strategy: _Optional[_Union[BackoffStrategy, str]] = ..., circuit_breaker: _Optional[_Union[CircuitBreakerMode, str]] = ..., initial_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., backoff_multiplier: _Optional[float] = ..., jitter: _Optional[float] = ..., custom_backoffs: _Optional[_Iterable[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]]] = ..., max_circuit_waits: _Optional[int] = ...) -> None: ...

class FallbackStrategy(_message.Message):
    __slots__ = ("primary_path", "fallback_paths", "degraded_mode")
    PRIMARY_PATH_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_PATHS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_MODE_FIELD_NUMBER: _ClassVar[int]
    primary_path: str
    fallback_paths: _containers.RepeatedScalarFieldContainer[str]
    degraded_mode: bool
    def __init__(self, primary_path: _Optional[str] = ..., fallback_paths: _Optional[_Iterable[str]] = ..., degraded_mode: _Optional[bool] = ...) -> None: ...

class ExecutionStrategy(_message.Message):
    __slots__ = ("execution_mode", "priority", "retry_policy", "fallback_strategy", "max_concurrency")
    EXECUTION_MODE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    execution_mode: ExecutionMode
    priority: Priority
    retry_policy: RetryPolicy
    fallback_strategy: FallbackStrategy
    max_concurrency: int
    def __init__(self, execution_mode: _Optional[_Union[ExecutionMode, str]] = ..., priority: _Optional[_Union[Priority, str]] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., fallback_strategy: _Optional[_Union[FallbackStrategy, _Mapping]] = ..., max_concurrency: _Optional[int] = ...) -> None: ...

class WorkflowStep(_message.Message):
    __slots__ = ("step_id", "step_name", "agent", "operation", "dependencies", "inputs", "outputs", "timing", "error_handling", "optional", "compensation", "kind", "approval", "for_each", "max_concurrency", "item_failure")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    ERROR_HANDLING_FIELD_NUMBER: _ClassVar[int]
    OPTIONAL_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    FOR_EACH_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    ITEM_FAILURE_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    step_name: str
    agent: str
    operation: str
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    inputs: StepInputs
    outputs: StepOutputs
    timing: StepTiming
    error_handling: ErrorHandling
    optional: bool
    compensation: Compensation
    kind: StepKind
    approval: Approval
    for_each: str
    max_concurrency: int
    item_failure: ItemFailure
    def __init__(self, step_id: _Optional[str] = ..., step_name: _Optional[str] = ..., agent: _Optional[str] = ..., operation: _Optional[str] = ..., dependencies: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Union[StepInputs, _Mapping]] = ..., outputs: _Optional[_Union[StepOutputs, _Mapping]] = ..., timing: _Optional[_Union[StepTiming, _Mapping]] = ..., error_handling: _Optional[_Union[ErrorHandling, _Mapping]] = ..., optional: _Optional[bool] = ..., compensation: _Optional[_Union[Compensation, _Mapping]] = ..., kind: _Optional[_Union[StepKind, str]] = ..., approval: _Optional[_Union[Approval, _Mapping]] = ..., for_each: _Optional[str] = ..., max_concurrency: _Optional[int] = ..., item_failure: _Optional[_Union[ItemFailure, str]] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("timeout", "on_timeout", "prompt", "data")
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    timeout: _duration_pb2.Duration
    on_timeout: ApprovalTimeoutAction
    prompt: str
    data: _struct_pb2.Struct
    def __init__(self, timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., on_timeout: _Optional[_Union[ApprovalTimeoutAction, str]] = ..., prompt: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Compensation(_message.Message):
    __slots__ = ("agent", "operation", "configuration", "timeout", "retry_count")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    agent: str
    operation: str
    configuration: _struct_pb2.Struct
    timeout: _duration_pb2.Duration
    retry_count: int
    def __init__(self, agent: _Optional[str] = ..., operation: _Optional[str] = ..., configuration: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_count: _Optional[int] = ...) -> None: ...

class StepInputs(_message.Message):
    __slots__ = ("data_requirements", "configuration", "quality_requirements", "fail_below_quality")
    DATA_REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    QUALITY_REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    FAIL_BELOW_QUALITY_FIELD_NUMBER: _ClassVar[int]
    data_requirements: _containers.RepeatedScalarFieldContainer[str]
    configuration: _struct_pb2.Struct
    quality_requirements: float
    fail_below_quality: bool
    def __init__(self, data_requirements: _Optional[_Iterable[str]] = ..., configuration: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., quality_requirements: _Optional[float] = ..., fail_below_quality: _Optional[bool] = ...) -> None: ...

class StepOutputs(_message.Message):
    __slots__ = ("expected_data", "quality_metrics", "success_criteria")
    EXPECTED_DATA_FIELD_NUMBER: _ClassVar[int]
    QUALITY_METRICS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_CRITERIA_FIELD_NUMBER: _ClassVar[int]
    expected_data: _containers.RepeatedScalarFieldContainer[str]
    quality_metrics: _containers.RepeatedScalarFieldContainer[str]
    success_criteria: _struct_pb2.Struct
    def __init__(self, expected_data: _Optional[_Iterable[str]] = ..., quality_metrics: _Optional[_Iterable[str]] = ..., success_criteria: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class StepTiming(_message.Message):
    __slots__ = ("estimated_duration", "timeout", "scheduling", "delay", "condition", "estimate_source", "estimate_samples", "estimated_p95")
    ESTIMATED_DURATION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_P95_FIELD_NUMBER: _ClassVar[int]
    estimated_duration: _duration_pb2.Duration
    timeout: _duration_pb2.Duration
    scheduling: Scheduling
    delay: _duration_pb2.Duration
    condition: str
    estimate_source: EstimateSource
    estimate_samples: int
    estimated_p95: _duration_pb2.Duration
    def __init__(self, estimated_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., scheduling: _Optional[_Union[Scheduling, str]] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., condition: _Optional[str] = ..., estimate_source: _Optional[_Union[EstimateSource, str]] = ..., estimate_samples: _Optional[int] = ..., estimated_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AlternativeCall(_message.Message):
    __slots__ = ("agent", "operation", "configuration")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    agent: str
    operation: str
    configuration: _struct_pb2.Struct
    def __init__(self, agent: _Optional[str] = ..., operation: _Optional[str] = ..., configuration: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ErrorHandling(_message.Message):
    __slots__ = ("retry_count", "fallback_action", "notification_required", "alternative")
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_ACTION_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVE_FIELD_NUMBER: _ClassVar[int]
    retry_count: int
    fallback_action: FallbackAction
    notification_required: bool
    alternative: AlternativeCall
    def __init__(self, retry_count: _Optional[int] = ..., fallback_action: _Optional[_Union[FallbackAction, str]] = ..., notification_required: _Optional[bool] = ..., alternative: _Optional[_Union[AlternativeCall, _Mapping]] = ...) -> None: ...

class QualityCriterion(_message.Message):
    __slots__ = ("metric", "operator", "value", "weight")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    metric: str
    operator: ComparisonOperator
    value: float
    weight: float
    def __init__(self, metric: _Optional[str] = ..., operator: _Optional[_Union[ComparisonOperator, str]] = ..., value: _Optional[float] = ..., weight: _Optional[float] = ...) -> None: ...

class QualityGate(_message.Message):
    __slots__ = ("gate_id", "checkpoint", "criteria", "action_on_failure", "pass_score")
    GATE_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    ACTION_ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    PASS_SCORE_FIELD_NUMBER: _ClassVar[int]
    gate_id: str
    checkpoint: str
    criteria: _containers.RepeatedCompositeFieldContainer[QualityCriterion]
    action_on_failure: GateAction
    pass_score: float
    def __init__(self, gate_id: _Optional[str] = ..., checkpoint: _Optional[str] = ..., criteria: _Optional[_Iterable[_Union[QualityCriterion, _Mapping]]] = ..., action_on_failure: _Optional[_Union[GateAction, str]] = ..., pass_score: _Optional[float] = ...) -> None: ...
