"""Workflow definitions: YAML files read once at start-up into frozen, validated templates."""

# A definition file is the seed's orchestration_plan minus what only a request knows (ids, user,
# times, estimates). Its keys, all checked:
#
#     workflow_type   the canonical name; the file must be named <workflow_type>.yaml
#     version         a string, e.g. "1.0.0"; plans record it as workflow_version
#     description     one paragraph for people
#     aliases         other names a request may use for this workflow (e.g. job_search)
#     journey_types   JourneyType names planned with this workflow when a request gives no
#                     workflow_type (e.g. onboarding)
#     document_step   the step that analyses the user's documents; it must have no dependencies
#     timeout         the default execution timeout, a JSON duration such as "120s"
#     execution_strategy  an ExecutionStrategy in proto JSON
#     workflow_steps  WorkflowSteps in proto JSON (``compensation: {agent, operation,
#                     configuration, timeout, retry_count}`` and a map step's ``for_each``,
#                     ``max_concurrency`` and ``item_failure`` among them), plus two planner keys:
#                       requires_approval: true   the step acts in the user's name (it submits);
#                                                 when the automation level asks for approvals
#                                                 the planner inserts an approval step before it
#                                                 (rule 4 of planner.py)
#                       approval: {...}           required with requires_approval, allowed only
#                                                 with it: the approval step to insert (see
#                                                 _approvals.py):
#                           step_id, step_name, prompt   required strings
#                           data                what the person is shown, with "${EXPR}"
#                           timeout             a JSON duration; unset means 1 hour
#                           on_timeout          fail (default) or skip; approve is refused
#                           approved_inputs     configuration fields of the guarded step that
#                                               replace its own, e.g. job_ids read from the
#                                               approval's (possibly narrowed) output
#                           approved_for_each   a map step's for_each once the approval is
#                                               inserted: the items the person approved
#                           approved_condition  the guarded step's condition once the approval
#                                               is inserted; unset means "it was approved"
#     quality_gates   QualityGates in proto JSON
#
# Enum values may be written as in the seed, in lower case without their prefix ("immediate",
# "skip", "gte", "continue_degraded", "hybrid", "exponential", "enabled"), or by their full names.

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from baton.v1 import journey_pb2, plan_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor

from server.planner._approvals import ApprovalTemplate, insert_approval, parse_approval
from server.planner._errors import DefinitionError, PlanInvalidError
from server.planner.validation import validate_plan

_KEYS = (
    "workflow_type",
    "version",
    "description",
    "aliases",
    "journey_types",
    "document_step",
    "timeout",
    "execution_strategy",
    "workflow_steps",
    "quality_gates",
)
_REQUIRED_KEYS = ("workflow_type", "version", "description", "execution_strategy", "workflow_steps")
_PLANNER_STEP_KEYS = ("requires_approval", "approval")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_DEFINITION_BYTES = 256 * 1024
"""The largest definition text read (UTF-8 bytes): the built-ins take under 12 KiB."""
MAX_DEFINITION_DEPTH = 32
"""The deepest nesting of mappings and lists in a definition (the built-ins nest 7 deep)."""
# The user id templates are validated with; real plans carry the requester's.
_PLACEHOLDER_USER = "definition-check"


@dataclass(frozen=True)
class WorkflowDefinition:
    """One built-in workflow: a plan template and how the planner may adapt it."""

    workflow_type: str
    """The canonical name, e.g. ``application_automation``."""
    version: str
    """The definition's version, recorded in every plan as workflow_version."""
    description: str
    """What the workflow does, for people."""
    aliases: tuple[str, ...]
    """Other names a request may use."""
    journey_types: tuple[int, ...]
    """Journey types planned with this workflow when a request names none."""
    document_step: str
    """The step that analyses the user's documents; empty when the workflow has none."""
    approvals: tuple[ApprovalTemplate, ...]
    """The approval steps to insert, in plan order, before the steps that act in the user's name."""
    source: str
    """The file the definition was read from (``definition_yaml`` for a registered one)."""
    template_bytes: bytes
    """The serialized OrchestrationPlan template (immutable; see `template`)."""
    step_ids: tuple[str, ...] = ()
    """The template's step ids, in the definition's order."""
    text: str = ""
    """The definition's text, as read."""

    @property
    def approval_steps(self) -> frozenset[str]:
        """The steps that need the user's approval when the automation level asks for one."""
        return frozenset(a.guarded_step for a in self.approvals)

    def template(self) -> plan_pb2.OrchestrationPlan:
        """Returns a fresh copy of the definition's plan: strategy, timeout, steps and gates."""
        return plan_pb2.OrchestrationPlan.FromString(self.template_bytes)

    def names(self) -> tuple[str, ...]:
        """The names a request may use for it: its workflow type, then its aliases."""
        return (self.workflow_type, *self.aliases)


def load_definitions(directory: Path) -> tuple[WorkflowDefinition, ...]:
    """Reads and validates every ``*.yaml`` definition in `directory`, sorted by workflow type.

    Raises:
        DefinitionError: a file is malformed, its template is not a valid plan, or two files
            claim the same workflow type, alias or journey type.
    """
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not files:
        raise DefinitionError(str(directory), "no workflow definitions (*.yaml) found")
    definitions = [_load(path) for path in files]
    _check_unique(definitions)
    return tuple(sorted(definitions, key=lambda d: d.workflow_type))


def _load(path: Path) -> WorkflowDefinition:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DefinitionError(source, f"cannot be read: {error}") from None
    return parse_definition(text, source, file_stem=path.stem)


def parse_definition(
    text: str, source: str, *, file_stem: str | None = None, version: str | None = None
) -> WorkflowDefinition:
    """Reads one definition from its YAML text and validates it (the rules of the built-ins).

    Args:
        text: the YAML (or JSON) text; at most MAX_DEFINITION_BYTES, without anchors or aliases.
        source: where it comes from, for errors (a file, or ``definition_yaml`` for a registered one).
        file_stem: the name of the file it was read from, without .yaml, which must be the
            workflow type; None for a definition that is no file's (a registered one).
        version: the version to give it when its text has no ``version`` key (the text's own
            must equal it when both are given); "" to leave it empty then (the caller chooses
            one later); None to require the key.

    Raises:
        DefinitionError: the text is too large, not YAML, or not a valid definition.
    """
    raw = _safe_yaml(source, text)
    if not isinstance(raw, dict):
        raise DefinitionError(source, "must be a mapping of definition keys")
    unknown = [k for k in raw if k not in _KEYS]
    if unknown:
        raise DefinitionError(source, f"unknown key {str(unknown[0])[:64]!r}; valid keys: {', '.join(_KEYS)}")
    given = raw.get("version")
    if version and given is not None and given != version:
        raise DefinitionError(source, f"version: the definition says {str(given)[:64]!r} but {version!r} was asked")
    if version is not None and given is None:
        raw = {**raw, "version": version}  # the caller's; "" when it chooses one later
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise DefinitionError(source, f"missing key {missing[0]!r}")

    workflow_type = _name(source, "workflow_type", raw["workflow_type"])
    if file_stem is not None and file_stem != workflow_type:
        raise DefinitionError(source, f"defines {workflow_type!r}, so the file must be named {workflow_type}.yaml")
    if version is None or given is not None:
        version = _string(source, "version", raw["version"])
    description = _string(source, "description", raw["description"]).strip()
    aliases = tuple(_name(source, "aliases", a) for a in _list(source, "aliases", raw.get("aliases", [])))
    journey_types = tuple(
        _journey_type(source, j) for j in _list(source, "journey_types", raw.get("journey_types", []))
    )

    template = plan_pb2.OrchestrationPlan(workflow_type=workflow_type, workflow_version=version)
    if "timeout" in raw:
        _parse(source, "timeout", {"timeout": raw["timeout"]}, template)
    _parse(source, "execution_strategy", raw["execution_strategy"], template.execution_strategy)

    # Each approval with where the file describes it, for errors.
    approvals: list[tuple[str, ApprovalTemplate]] = []
    for i, raw_step in enumerate(_list(source, "workflow_steps", raw["workflow_steps"])):
        where = f"workflow_steps[{i}]"
        if not isinstance(raw_step, dict):
            raise DefinitionError(source, f"{where} must be a mapping")
        fields = {k: v for k, v in raw_step.items() if k not in _PLANNER_STEP_KEYS}
        step = template.workflow_steps.add()
        _parse(source, where, fields, step)
        if step.kind == plan_pb2.STEP_KIND_APPROVAL:
            # Whether to ask is the user's choice (automation_level), so the planner inserts them.
            raise DefinitionError(
                source,
                f"{where}.kind: approval steps are not written in a definition; mark the step they guard "
                "with requires_approval: true and describe the approval in its approval block",
            )
        # Every built-in step states its deadline and its default estimate; nothing is implicit.
        if not step.timing.HasField("timeout"):
            raise DefinitionError(source, f"{where}.timing.timeout is required in a definition")
        if not step.timing.HasField("estimated_duration"):
            raise DefinitionError(source, f"{where}.timing.estimated_duration is required in a definition")
        requires = raw_step.get("requires_approval", False)
        if not isinstance(requires, bool):
            raise DefinitionError(source, f"{where}.requires_approval must be true or false")
        if requires != ("approval" in raw_step):
            raise DefinitionError(
                source,
                f"{where}: requires_approval: true and an approval block go together "
                "(the block describes the approval step inserted before this one)",
            )
        if requires:
            place = f"{where}.approval"
            approvals.append((place, parse_approval(source, place, step, raw_step["approval"])))

    for g, raw_gate in enumerate(_list(source, "quality_gates", raw.get("quality_gates", []))):
        _parse(source, f"quality_gates[{g}]", raw_gate, template.quality_gates.add())

    document_step = ""
    if "document_step" in raw:
        document_step = _string(source, "document_step", raw["document_step"])
        roots = [s.step_id for s in template.workflow_steps if not s.dependencies]
        if document_step not in roots:
            raise DefinitionError(source, f"document_step {document_step!r} must name a step without dependencies")

    return WorkflowDefinition(
        workflow_type=workflow_type,
        version=version,
        description=description,
        aliases=aliases,
        journey_types=journey_types,
        document_step=document_step,
        approvals=tuple(a for _, a in approvals),
        source=source,
        template_bytes=_validated(source, template, approvals),
        step_ids=tuple(step.step_id for step in template.workflow_steps),
        text=text,
    )


def _safe_yaml(source: str, text: str) -> Any:
    """Loads YAML that stays small once loaded: bounded size and depth, no aliases, JSON values only.

    Aliases are refused because a few lines of nested aliases expand into billions of nodes
    ("billion laughs") for every pass over the loaded value; the nesting is bounded before
    loading, because PyYAML's composer recurses once per level.
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionError(source, f"is {size} bytes; a definition may take at most {MAX_DEFINITION_BYTES}")
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise DefinitionError(
                    source, f"{_line(event)}YAML anchors and aliases (&, *) are not allowed in a definition"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEFINITION_DEPTH:
                    raise DefinitionError(source, f"{_line(event)}nested more than {MAX_DEFINITION_DEPTH} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DefinitionError(source, f"is not valid YAML: {str(error)[:500]}") from None
    except (ValueError, OverflowError) as error:
        # A scalar YAML reads but Python will not hold, e.g. an integer of more than 4300 digits.
        raise DefinitionError(source, f"cannot be loaded: {str(error)[:200]}") from None
    _check_json(source, raw, "")
    return raw


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}: " if mark is not None else ""


def _check_json(source: str, value: Any, where: str) -> None:
    """Refuses what YAML can load but JSON cannot say (dates, binary, sets, non-string keys)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DefinitionError(source, f"{where or 'the definition'}: key {str(key)[:64]!r} must be a string")
            _check_json(source, item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(source, item, f"{where}[{i}]")
    elif value is not None and not isinstance(value, str | int | float | bool):
        kind = type(value).__name__
        raise DefinitionError(source, f"{where}: a {kind} is not a JSON value (quote it to make it a string)")


def _validated(
    source: str, template: plan_pb2.OrchestrationPlan, approvals: Iterable[tuple[str, ApprovalTemplate]]
) -> bytes:
    """Validates the template as it is and with each approval step inserted; returns it serialized."""
    check = plan_pb2.OrchestrationPlan()
    check.CopyFrom(template)
    check.user_id = _PLACEHOLDER_USER
    try:
        validate_plan(check)
    except PlanInvalidError as error:
        raise DefinitionError(source, str(error)) from None
    ids = {s.step_id for s in template.workflow_steps}
    for where, approval in approvals:
        if approval.step_id in ids:
            raise DefinitionError(source, f"{where}.step_id {approval.step_id!r} is already a step's id")
        ids.add(approval.step_id)
        approved = plan_pb2.OrchestrationPlan()
        approved.CopyFrom(check)
        insert_approval(approved, approval)
        try:
            validate_plan(approved)
        except PlanInvalidError as error:
            raise DefinitionError(source, f"{where}: with the approval step inserted, {error}") from None
    return template.SerializeToString(deterministic=True)


def _check_unique(definitions: list[WorkflowDefinition]) -> None:
    names: dict[str, str] = {}
    journeys: dict[int, str] = {}
    for d in definitions:
        for name in (d.workflow_type, *d.aliases):
            if name in names:
                raise DefinitionError(d.source, f"the name {name!r} is already used by {names[name]}")
            names[name] = d.source
        for journey in d.journey_types:
            if journey in journeys:
                label = journey_pb2.JourneyType.Name(journey)
                raise DefinitionError(d.source, f"journey type {label} is already mapped by {journeys[journey]}")
            journeys[journey] = d.source


def _parse(source: str, where: str, raw: Any, message: Any) -> None:
    if not isinstance(raw, dict):
        raise DefinitionError(source, f"{where} must be a mapping")
    try:
        json_format.ParseDict(_normalize_enums(raw, message.DESCRIPTOR), message)
    except json_format.ParseError as error:
        raise DefinitionError(source, f"{where}: {error}") from None


def _normalize_enums(raw: Any, descriptor: Descriptor) -> Any:
    """Rewrites the seed's short enum spellings ("skip") as proto names ("FALLBACK_ACTION_SKIP")."""
    if not isinstance(raw, dict):
        return raw
    result: dict[str, Any] = {}
    for key, value in raw.items():
        field = descriptor.fields_by_name.get(key)
        if field is None:
            result[key] = value
        elif field.enum_type is not None:
            enum = field.enum_type
            result[key] = [_enum_name(v, enum) for v in value] if isinstance(value, list) else _enum_name(value, enum)
        elif field.message_type is not None and field.message_type.full_name.startswith("baton."):
            sub = field.message_type
            if isinstance(value, list):
                result[key] = [_normalize_enums(v, sub) for v in value]
            else:
                result[key] = _normalize_enums(value, sub)
        else:
            result[key] = value
    return result


def _enum_name(value: Any, enum: EnumDescriptor) -> Any:
    if not isinstance(value, str):
        return value
    name = value.upper()
    if name in enum.values_by_name:
        return name
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    return prefix + name if prefix + name in enum.values_by_name else value


def _journey_type(source: str, value: Any) -> int:
    name = _enum_name(value, journey_pb2.JourneyType.DESCRIPTOR)
    if not isinstance(name, str) or name not in journey_pb2.JourneyType.DESCRIPTOR.values_by_name:
        valid = ", ".join(
            v.name.removeprefix("JOURNEY_TYPE_").lower() for v in journey_pb2.JourneyType.DESCRIPTOR.values[1:]
        )
        raise DefinitionError(source, f"journey_types: unknown journey type {value!r}; valid: {valid}")
    number = journey_pb2.JourneyType.Value(name)
    if number == journey_pb2.JOURNEY_TYPE_UNSPECIFIED:
        raise DefinitionError(source, "journey_types: JOURNEY_TYPE_UNSPECIFIED cannot be mapped")
    return number


def _string(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(source, f'{key} must be a non-empty string (quote numbers such as "1.0")')
    return value


def _name(source: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise DefinitionError(source, f"{key}: {value!r} must be a lower-case name of letters, digits and '_'")
    return value


def _list(source: str, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise DefinitionError(source, f"{key} must be a list")
    return value
