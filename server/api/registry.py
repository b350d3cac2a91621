"""The workflow registry's RPCs (RegisterWorkflow, GetWorkflow, ListWorkflows, DeprecateWorkflow).

Thin: each validates its request's shape and delegates to server.registry, whose rules decide;
the admin role is required by the policy table (server.auth.policy), before these run.
"""

from __future__ import annotations

from baton.v1 import orchestrator_pb2, registry_pb2

from server.api.errors import invalid
from server.api.limits import check_key
from server.auth import current_principal
from server.registry import RegisteredVersion, WorkflowRegistry

R = registry_pb2

MAX_VERSION_CHARS = 32
"""Characters of a version field: a semantic version takes at most 29."""


def definition_info(version: RegisteredVersion, *, with_text: bool) -> registry_pb2.WorkflowDefinitionInfo:
    """A registered version as its message; its text only when `with_text`."""
    row = version.row
    info = R.WorkflowDefinitionInfo(
        workflow_type=row.workflow_type,
        version=row.version,
        description=version.definition.description if version.definition is not None else "",
        digest=row.digest,
        builtin=row.builtin,
        deprecated=version.deprecated,
        registered_by=row.registered_by,
        deprecation_reason=row.deprecation_reason,
        latest=version.latest,
        problem=version.problem,
        step_ids=version.definition.step_ids if version.definition is not None else (),
    )
    if with_text:
        info.definition_yaml = row.definition
    info.registered_at.FromDatetime(row.registered_at)
    if row.deprecated_at is not None:
        info.deprecated_at.FromDatetime(row.deprecated_at)
    return info


def _check_type(workflow_type: str, *, required: bool) -> None:
    if required and not workflow_type:
        raise invalid("workflow_type", "required")
    check_key("workflow_type", workflow_type)


def _check_version(field: str, version: str) -> None:
    if len(version) > MAX_VERSION_CHARS:
        raise invalid(field, f"at most {MAX_VERSION_CHARS} characters, got {len(version)}")


async def register_workflow(
    registry: WorkflowRegistry, request: registry_pb2.RegisterWorkflowRequest
) -> registry_pb2.RegisterWorkflowResponse:
    """RegisterWorkflow."""
    if not request.definition_yaml.strip():
        raise invalid("definition_yaml", "required: the definition's YAML text")
    _check_version("version", request.version)
    principal = current_principal()
    version, created = await registry.register(
        request.definition_yaml, request.version, principal.subject if principal.authenticated else ""
    )
    return R.RegisterWorkflowResponse(workflow=definition_info(version, with_text=True), created=created)


async def get_workflow(
    registry: WorkflowRegistry, request: registry_pb2.GetWorkflowRequest
) -> registry_pb2.WorkflowDefinitionInfo:
    """GetWorkflow."""
    _check_type(request.workflow_type, required=True)
    _check_version("version", request.version)
    return definition_info(await registry.get(request.workflow_type, request.version), with_text=True)


async def list_workflows(
    registry: WorkflowRegistry, request: registry_pb2.ListWorkflowsRequest
) -> registry_pb2.ListWorkflowsResponse:
    """ListWorkflows."""
    _check_type(request.workflow_type, required=False)
    versions = await registry.versions(request.workflow_type)
    return R.ListWorkflowsResponse(workflows=[definition_info(v, with_text=False) for v in versions])


async def deprecate_workflow(
    registry: WorkflowRegistry, request: registry_pb2.DeprecateWorkflowRequest
) -> registry_pb2.WorkflowDefinitionInfo:
    """DeprecateWorkflow."""
    _check_type(request.workflow_type, required=True)
    _check_version("version", request.version)
    version = await registry.deprecate(request.workflow_type, request.version, request.reason)
    return definition_info(version, with_text=False)


def check_version_request(
    request: orchestrator_pb2.ExecuteWorkflowRequest | orchestrator_pb2.PlanWorkflowRequest,
) -> None:
    """Refuses a workflow_version that cannot be one, or that comes with an explicit plan."""
    _check_version("workflow_version", request.workflow_version)
    if (
        request.workflow_version
        and isinstance(request, orchestrator_pb2.ExecuteWorkflowRequest)
        and request.HasField("plan")
    ):
        raise invalid("workflow_version", "not allowed with plan: an explicit plan is run as given")


__all__ = [
    "check_version_request",
    "definition_info",
    "deprecate_workflow",
    "get_workflow",
    "list_workflows",
    "register_workflow",
]
