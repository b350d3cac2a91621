"""The planner: workflow definitions (YAML) adapted to a request into a validated OrchestrationPlan."""

from server.planner._approvals import ApprovalTemplate
from server.planner._definitions import MAX_DEFINITION_BYTES, WorkflowDefinition, parse_definition
from server.planner._errors import DefinitionError, PlanInvalidError, PlanningError, UnknownWorkflowError
from server.planner._expressions import expression_of, iter_expressions, referenced_steps
from server.planner.planner import (
    DEFINITIONS_DIR,
    DOCUMENT_ANALYSIS,
    GATE_THRESHOLD_STEP,
    PROFILE_COMPLETE,
    Estimates,
    Planner,
    RecordedDurations,
)
from server.planner.validation import validate_plan

__all__ = [
    # Planning
    "DEFINITIONS_DIR",
    "DOCUMENT_ANALYSIS",
    "GATE_THRESHOLD_STEP",
    "PROFILE_COMPLETE",
    "Estimates",
    "ApprovalTemplate",
    "Planner",
    "RecordedDurations",
    "WorkflowDefinition",
    # Registered definitions (server.registry): read like the built-ins, then Planner.check
    "MAX_DEFINITION_BYTES",
    "parse_definition",
    # Validation
    "validate_plan",
    # Errors: PlanningError is what the API maps to INVALID_ARGUMENT (naming .field);
    # DefinitionError is a start-up failure.
    "DefinitionError",
    "PlanInvalidError",
    "PlanningError",
    "UnknownWorkflowError",
    # The "${EXPR}" convention of step inputs
    "expression_of",
    "iter_expressions",
    "referenced_steps",
]
