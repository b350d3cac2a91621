"""Trigger rules: their validation, and what they make of an event (pure functions, no I/O).

Rules:
1. A rule is checked whole when registered: its name, event type and sizes are bounded, its
   workflow type is one the planner knows, its condition and every "${EXPR}" of its user_context
   compile as JMESPath (the language of step inputs, server.engine.expressions), and the literal
   part of its user_context is a valid UserJourney without user_id (the event's subject is the
   owner). A failure is a RuleError naming the field (`rule.condition`).
2. An event is seen by rules as one JSON object, `event_document`: id, type, subject, payload,
   occurred_at. A rule matches an event of its event_type when its condition's result is truthy
   (as a step condition's: not null, false, 0, or empty); an empty condition always holds.
3. Evaluating a rule over an event is bounded as any expression is (server.engine.expressions);
   one that fails, or builds a user_context that is not a valid UserJourney, is a RuleError
   naming the rule: a publication either starts what every matching rule asks, or nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from importlib import resources
from typing import Any

import jmespath
import yaml
from baton.v1 import journey_pb2, triggers_pb2
from google.protobuf import json_format

from server.engine.expressions import ExpressionError, evaluate, expression_of, resolve
from server.quoting import quote

RULE_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}")
"""A rule's name."""
EVENT_TYPE = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,127}")
"""An event type."""
MAX_RULES = 256
"""Rules registered at once."""
MAX_RULE_BYTES = 16 * 1024
"""A rule's serialized size."""
MAX_CONDITION = 1024
"""Characters of a rule's condition."""
MAX_DESCRIPTION = 1024
"""Characters of a rule's description."""


class RuleError(ValueError):
    """A rule that does not validate, or cannot be applied to an event; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_rule(rule: triggers_pb2.TriggerRule, resolve_workflow: Callable[[str], str], *, field: str = "rule") -> None:
    """Validates a rule (rule 1).

    Args:
        rule: the rule.
        resolve_workflow: returns the canonical workflow type a name denotes; raises ValueError
            (or a subclass) for an unknown one.
        field: the rule's field path, for errors.

    Raises:
        RuleError: naming the field at fault.
    """
    size = rule.ByteSize()
    if size > MAX_RULE_BYTES:
        raise RuleError(field, f"{size} bytes serialized, more than the {MAX_RULE_BYTES} allowed")
    if not rule.name:
        raise RuleError(f"{field}.name", "required")
    if RULE_NAME.fullmatch(rule.name) is None:
        raise RuleError(
            f"{field}.name",
            f"1 to 64 characters from a-z, 0-9, _, - and ., starting with a letter or digit; got {quote(rule.name)}",
        )
    if len(rule.description) > MAX_DESCRIPTION:
        raise RuleError(f"{field}.description", f"at most {MAX_DESCRIPTION} characters, got {len(rule.description)}")
    check_event_type(f"{field}.event_type", rule.event_type)
    if len(rule.condition) > MAX_CONDITION:
        raise RuleError(f"{field}.condition", f"at most {MAX_CONDITION} characters, got {len(rule.condition)}")
    if rule.condition:
        _compile(f"{field}.condition", rule.condition)
    if not rule.workflow_type:
        raise RuleError(f"{field}.workflow_type", "required")
    try:
        resolve_workflow(rule.workflow_type)
    except ValueError as error:
        raise RuleError(f"{field}.workflow_type", getattr(error, "message", str(error))) from None
    template = json_format.MessageToDict(rule.user_context)
    if "user_id" in template:
        raise RuleError(f"{field}.user_context.user_id", "set to the event's subject; leave it out")
    _compile_template(f"{field}.user_context", template)
    try:
        json_format.ParseDict(_literals(template), journey_pb2.UserJourney())
    except json_format.ParseError as error:
        raise RuleError(f"{field}.user_context", f"not a UserJourney: {error}") from None


def check_event_type(field: str, event_type: str) -> None:
    """Checks an event type (EVENT_TYPE).

    Raises:
        RuleError: naming the field.
    """
    if not event_type:
        raise RuleError(field, "required")
    if EVENT_TYPE.fullmatch(event_type) is None:
        raise RuleError(
            field,
            f"1 to 128 characters from a-z, 0-9, _, - and ., starting with a letter or digit; got {quote(event_type)}",
        )


def event_document(
    event_id: str, event_type: str, subject: str, payload: Mapping[str, Any], occurred_at: datetime | None
) -> dict[str, Any]:
    """The event as rules see it (rule 2)."""
    return {
        "id": event_id,
        "type": event_type,
        "subject": subject,
        "payload": dict(payload),
        "occurred_at": None if occurred_at is None else occurred_at.isoformat().replace("+00:00", "Z"),
    }


def matches(rule: triggers_pb2.TriggerRule, document: Mapping[str, Any]) -> bool:
    """Whether the rule applies to the event (rule 2).

    Raises:
        RuleError: the condition failed on this event (rule 3), naming the rule.
    """
    if rule.event_type != document.get("type"):
        return False
    if not rule.condition:
        return True
    try:
        return bool(evaluate(rule.condition, document))
    except ExpressionError as error:
        raise RuleError(f"rule {quote(rule.name)}: condition", str(error)) from None


def build_user_context(
    rule: triggers_pb2.TriggerRule, document: Mapping[str, Any], subject: str
) -> journey_pb2.UserJourney:
    """The user_context the rule makes of the event, owned by `subject` (rule 3).

    Raises:
        RuleError: an expression failed, or the result is not a UserJourney, naming the rule.
    """
    where = f"rule {quote(rule.name)}: user_context"
    try:
        built = resolve(json_format.MessageToDict(rule.user_context), document)
    except ExpressionError as error:
        raise RuleError(where, str(error)) from None
    journey = journey_pb2.UserJourney()
    try:
        json_format.ParseDict(built, journey)
    except json_format.ParseError as error:
        raise RuleError(where, f"this event makes it an invalid UserJourney: {error}") from None
    journey.user_id = subject
    return journey


def rule_from_yaml(text: str, *, source: str = "rule") -> triggers_pb2.TriggerRule:
    """A rule written as YAML (a TriggerRule as JSON with proto field names, see examples/).

    Raises:
        RuleError: the text is not YAML, not a mapping, or not a TriggerRule (field: `source`).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleError(source, f"not YAML: {error}") from None
    if not isinstance(data, dict):
        raise RuleError(source, f"a rule is a mapping of its fields, got {type(data).__name__}")
    try:
        return json_format.ParseDict(data, triggers_pb2.TriggerRule())
    except json_format.ParseError as error:
        raise RuleError(source, f"not a TriggerRule: {error}") from None


def example_rules() -> dict[str, triggers_pb2.TriggerRule]:
    """The example rules shipped in server/triggers/examples, by file name (`*.workflow.yaml` there
    are workflow definitions for the workflow registry, which rules start)."""
    folder = resources.files("server.triggers") / "examples"
    return {
        entry.name: rule_from_yaml(entry.read_text(encoding="utf-8"), source=entry.name)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml") and not entry.name.endswith(".workflow.yaml")
    }


def _compile(field: str, expression: str) -> None:
    try:
        jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as error:
        raise RuleError(field, f"{quote(expression)} is not a JMESPath expression: {error}") from None


def _compile_template(field: str, value: Any) -> None:
    """Compiles every "${EXPR}" of a template."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _compile_template(f"{field}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _compile_template(f"{field}[{index}]", item)
    else:
        expression = expression_of(value)
        if expression is not None:
            _compile(field, expression)


def _literals(value: Any) -> Any:
    """The template without its expressions (what is left whatever the event)."""
    if isinstance(value, Mapping):
        return {k: _literals(v) for k, v in value.items() if expression_of(v) is None}
    if isinstance(value, list):
        return [_literals(v) for v in value if expression_of(v) is None]
    return value


__all__ = [
    "EVENT_TYPE",
    "MAX_RULES",
    "MAX_RULE_BYTES",
    "RULE_NAME",
    "RuleError",
    "build_user_context",
    "check_event_type",
    "check_rule",
    "event_document",
    "example_rules",
    "matches",
    "rule_from_yaml",
]
