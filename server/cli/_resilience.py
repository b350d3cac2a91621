"""`baton serve`'s flags for the agents' circuit breakers and retry budget, in one place.

Each flag overrides the same key of the `resilience:` section of the `--agents` YAML file
(`breaker:` and `retry_budget:` mappings, keys named as the flags without the prefix, with `_`),
which overrides the defaults (agents_clients.BreakerConfig, agents_clients.RetryBudgetConfig).
The section's `routing:` mapping sets agents_clients.RoutingConfig (keys named as its fields);
`--no-hedging` turns hedging off whatever it says.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from agents_clients import BreakerConfig, RetryBudgetConfig, RoutingConfig
from server.cli._capacity import CAPACITY_SECTIONS
from server.config import ConfigError

_B = BreakerConfig()
_R = RetryBudgetConfig()

#: (flag, section, key, type, help) of every setting.
_FLAGS: tuple[tuple[str, str, str, type, str], ...] = (
    (
        "--breaker-failure-rate",
        "breaker",
        "failure_rate",
        float,
        "share of failed calls in the window that opens an agent's breaker",
    ),
    ("--breaker-window", "breaker", "window", int, "calls the breaker's rates are measured over"),
    (
        "--breaker-minimum-calls",
        "breaker",
        "minimum_calls",
        int,
        "calls the window must hold before a rate can open the breaker",
    ),
    ("--breaker-fail-max", "breaker", "fail_max", int, "consecutive failures that open the breaker; 0: none"),
    (
        "--breaker-slow-call",
        "breaker",
        "slow_call_seconds",
        float,
        "seconds after which a call counts as slow; 0: none",
    ),
    (
        "--breaker-slow-call-rate",
        "breaker",
        "slow_call_rate",
        float,
        "share of slow calls in the window that opens the breaker",
    ),
    ("--breaker-reset", "breaker", "reset_timeout", float, "seconds an open breaker waits before one probe call"),
    (
        "--retry-budget-ratio",
        "retry_budget",
        "ratio",
        float,
        "retries allowed per first call, per agent, over the window",
    ),
    (
        "--retry-budget-min-per-second",
        "retry_budget",
        "min_retries_per_second",
        float,
        "retries per second always allowed, per agent",
    ),
    ("--retry-budget-window", "retry_budget", "window", float, "seconds over which the retry budget counts calls"),
)


def add_resilience_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the breaker and retry budget flags to `parser`."""
    group = parser.add_argument_group(
        "resilience", "the agents' circuit breakers and retry budget (README: Resilience)"
    )
    for flag, section, key, kind, text in _FLAGS:
        default = getattr(_B if section == "breaker" else _R, key)
        group.add_argument(flag, type=kind, default=None, metavar="N", help=f"{text} (default {default:g})")
    group.add_argument(
        "--no-retry-budget", action="store_true", help="let retries through whatever their share (default: held)"
    )
    group.add_argument(
        "--no-hedging",
        action="store_true",
        help="never hedge read operations across an agent's endpoints (README: Routing across agent replicas)",
    )


def resilience_from(
    args: argparse.Namespace, yaml_section: Mapping[str, Any] | None = None
) -> tuple[BreakerConfig, RetryBudgetConfig]:
    """The settings the flags (over the YAML file's `resilience:` section) ask for.

    Raises:
        ConfigError: an unknown key, or a value out of range (the message names it).
    """
    yaml_section = yaml_section or {}
    values: dict[str, dict[str, Any]] = {"breaker": {}, "retry_budget": {}}
    known = {
        "breaker": {f.name for f in fields(BreakerConfig)},
        "retry_budget": {f.name for f in fields(RetryBudgetConfig)},
    }
    for section, settings in yaml_section.items():
        if section in CAPACITY_SECTIONS or section == "routing":
            continue  # server.cli._capacity and routing_from read them
        if section not in values or not isinstance(settings, Mapping):
            raise ConfigError(
                f"resilience.{section}: expected breaker, retry_budget, {', '.join(CAPACITY_SECTIONS)}, each a mapping"
            )
        for key, value in settings.items():
            if key not in known[section]:
                raise ConfigError(f"resilience.{section}.{key}: unknown; known: {', '.join(sorted(known[section]))}")
            if isinstance(value, bool) != (key == "enabled") or not isinstance(value, int | float):
                raise ConfigError(f"resilience.{section}.{key}: expected a number, got {value!r}")
            values[section][key] = value
    for flag, section, key, _, _ in _FLAGS:
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            values[section][key] = value
    if getattr(args, "no_retry_budget", False):
        values["retry_budget"]["enabled"] = False
    try:
        return BreakerConfig(**values["breaker"]), RetryBudgetConfig(**values["retry_budget"])
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None


def routing_from(args: argparse.Namespace, yaml_section: Mapping[str, Any] | None = None) -> RoutingConfig:
    """The routing settings of the YAML file's `resilience.routing:` mapping, and `--no-hedging`.

    Raises:
        ConfigError: an unknown key, or a value out of range (the message names it).
    """
    settings = (yaml_section or {}).get("routing", {})
    if not isinstance(settings, Mapping):
        raise ConfigError("resilience.routing: expected a mapping of settings (README: Routing across agent replicas)")
    known = {f.name for f in fields(RoutingConfig)}
    values: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in known:
            raise ConfigError(f"resilience.routing.{key}: unknown; known: {', '.join(sorted(known))}")
        if isinstance(value, bool) != (key == "hedging") or not isinstance(value, int | float):
            kind = "true or false" if key == "hedging" else "a number"
            raise ConfigError(f"resilience.routing.{key}: expected {kind}, got {value!r}")
        values[key] = value
    if getattr(args, "no_hedging", False):
        values["hedging"] = False
    try:
        return RoutingConfig(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"resilience.{exc}") from None
