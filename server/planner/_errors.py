"""The planner's errors: what a caller did wrong (named by field) and what a definition file did wrong."""

from __future__ import annotations

from collections.abc import Sequence

from server.quoting import clip


class PlanningError(ValueError):
    """A request cannot be planned or a plan cannot run; the API answers INVALID_ARGUMENT.

    Attributes:
        field: the offending field's path, e.g. ``workflow_steps[2].dependencies[0]``.
        message: what is wrong with it, without the field.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PlanInvalidError(PlanningError):
    """A plan (client-built or planned) breaks a rule; ``str(error)`` names the field first."""


class UnknownWorkflowError(PlanningError):
    """The workflow type (or the journey type standing in for it) names no definition.

    Attributes:
        workflow_type: the requested type, as given (empty when neither it nor a journey type was set).
        known: the canonical workflow types, sorted.
    """

    def __init__(self, workflow_type: str, known: Sequence[str], aliases: Sequence[tuple[str, str]] = ()) -> None:
        valid = ", ".join(known)
        if aliases:
            valid += " (aliases: " + ", ".join(f"{a} -> {c}" for a, c in aliases) + ")"
        if workflow_type:
            message = f'unknown workflow type "{clip(workflow_type)}"; valid types: {valid}'
        else:
            message = f"required when user_context.journey_type is not set; valid types: {valid}"
        super().__init__("workflow_type", message)
        self.workflow_type = workflow_type
        self.known = tuple(known)


class DefinitionError(Exception):
    """A workflow definition file is malformed or plans an invalid plan; raised at start-up.

    Attributes:
        source: the definition file.
        message: what is wrong with it.
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message
