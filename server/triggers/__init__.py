"""Event-driven triggers: rules that map published events to workflows, and where they are kept."""

from server.triggers.rules import (
    EVENT_TYPE,
    MAX_RULE_BYTES,
    MAX_RULES,
    RULE_NAME,
    RuleError,
    build_user_context,
    check_rule,
    event_document,
    example_rules,
    matches,
    rule_from_yaml,
)
from server.triggers.store import PublishedEvent, Registered, TriggerStart, TriggerStore, trigger_store_for

__all__ = [
    # rules
    "EVENT_TYPE",
    "MAX_RULES",
    "MAX_RULE_BYTES",
    "RULE_NAME",
    "RuleError",
    "build_user_context",
    "check_rule",
    "event_document",
    "example_rules",
    "matches",
    "rule_from_yaml",
    # storage
    "PublishedEvent",
    "Registered",
    "TriggerStart",
    "TriggerStore",
    "trigger_store_for",
]
