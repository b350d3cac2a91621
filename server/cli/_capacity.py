"""`baton serve`'s flags for the agents' bulkheads, rate limits and job-board limits, in one place.

Each flag overrides the same entry of the `resilience:` section of the `--agents` YAML file,
which overrides the defaults (agents_clients.CapacityConfig):

    resilience:
      bulkheads: {job_discovery: 4, automation.SubmitApplication: 1}
      rate_limits: {job_discovery: 5/s:10, automation: 30/m}
      capacity: {max_waiting: 100, board_quota_window: 3600, board_limited_share: 0.1, board_min_rate: 1/m}

A scope is an agent name or AGENT.OPERATION; a rate is RATE/s[:BURST] (or /m, /h).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

from agents_clients import BoardLimitsConfig, CapacityConfig, RateLimit, check_scope
from server.config import ConfigError

CAPACITY_SECTIONS = ("bulkheads", "rate_limits", "capacity")
"""The sections of the YAML file's `resilience:` this module reads."""

_B = BoardLimitsConfig()


def add_capacity_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the bulkhead, rate limit and board flags to `parser`."""
    group = parser.add_argument_group(
        "capacity", "the agents' bulkheads and rate limits, and the job boards' (README: Bulkheads, rate limits)"
    )
    add_call_limit_flags(group)
    group.add_argument(
        "--capacity-max-waiting",
        type=int,
        default=None,
        metavar="N",
        help="calls that may wait at once for each bulkhead or rate limit; one more fails at once (default 100)",
    )
    group.add_argument(
        "--board-quota-window",
        type=float,
        default=None,
        metavar="S",
        help=f"seconds in which a job board's quota is whole again (default {_B.quota_window:g})",
    )
    group.add_argument(
        "--board-limited-share",
        type=float,
        default=None,
        metavar="F",
        help=f"share of its quota's even pace a limited board's calls get (default {_B.limited_share:g})",
    )
    group.add_argument(
        "--board-min-rate",
        default=None,
        metavar="RATE",
        help="the pace a limited or spent board always gets, RATE/s, /m or /h (default 1/m)",
    )


def add_call_limit_flags(parser: argparse.ArgumentParser | Any, default: str = "") -> None:
    """Adds --bulkhead and --rate-limit (also `baton demo`'s, whose `default` the help names)."""
    otherwise = f"; without either flag: {default}" if default else ""
    parser.add_argument(
        "--bulkhead",
        action="append",
        default=[],
        metavar="SCOPE=N",
        help="at most N calls in flight at once to an agent or AGENT.OPERATION (repeatable)",
    )
    parser.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="SCOPE=RATE",
        help=f"calls to an agent or AGENT.OPERATION held to RATE/s[:BURST] (or /m, /h) (repeatable){otherwise}",
    )


def _pair(flag: str, text: str) -> tuple[str, str]:
    scope, sep, value = text.partition("=")
    if not sep or not scope.strip() or not value.strip():
        raise ConfigError(f"{flag}: expected SCOPE=VALUE (SCOPE an agent or AGENT.OPERATION), got {text[:64]!r}")
    return scope.strip(), value.strip()


def _count(setting: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{setting}: expected a whole number, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{setting}: expected a whole number, got {str(value)[:64]!r}") from None


def _rate(setting: str, value: object) -> RateLimit:
    if not isinstance(value, str):
        raise ConfigError(f"{setting}: expected RATE/s[:BURST] as text, such as 5/s:10, got {value!r}")
    try:
        return RateLimit.parse(value)
    except ValueError as error:
        raise ConfigError(f"{setting}: {error}") from None


def _scope(setting: str, scope: str) -> str:
    try:
        return check_scope(scope)
    except ValueError as error:
        raise ConfigError(f"{setting}: {error}") from None


def capacity_from(args: argparse.Namespace, yaml_section: Mapping[str, Any] | None = None) -> CapacityConfig:
    """The limits the flags (over the YAML file's `resilience:` section) ask for.

    Raises:
        ConfigError: an unknown agent, operation or key, or a value out of range (the message names it).
    """
    yaml_section = yaml_section or {}
    bulkheads: dict[str, int] = {}
    rate_limits: dict[str, RateLimit] = {}
    settings: dict[str, Any] = {}
    for section in CAPACITY_SECTIONS:
        entries = yaml_section.get(section, {})
        if not isinstance(entries, Mapping):
            raise ConfigError(f"resilience.{section}: expected a mapping")
        for key, value in entries.items():
            where = f"resilience.{section}.{key}"
            if section == "bulkheads":
                bulkheads[_scope(where, str(key))] = _count(where, value)
            elif section == "rate_limits":
                rate_limits[_scope(where, str(key))] = _rate(where, value)
            elif key in ("max_waiting",):
                settings[key] = _count(where, value)
            elif key in ("board_quota_window", "board_limited_share"):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{where}: expected a number, got {value!r}")
                settings[key] = float(value)
            elif key == "board_min_rate":
                settings[key] = _rate(where, value).rate
            else:
                known = "max_waiting, board_quota_window, board_limited_share, board_min_rate"
                raise ConfigError(f"{where}: unknown; known: {known}")
    for text in getattr(args, "bulkhead", None) or ():
        scope, value = _pair("--bulkhead", text)
        bulkheads[_scope(f"--bulkhead {scope}", scope)] = _count(f"--bulkhead {scope}", value)
    for text in getattr(args, "rate_limit", None) or ():
        scope, value = _pair("--rate-limit", text)
        rate_limits[_scope(f"--rate-limit {scope}", scope)] = _rate(f"--rate-limit {scope}", value)
    if getattr(args, "capacity_max_waiting", None) is not None:
        settings["max_waiting"] = args.capacity_max_waiting
    for name in ("board_quota_window", "board_limited_share"):
        value = getattr(args, name, None)
        if value is not None:
            if not math.isfinite(value):
                raise ConfigError(f"--{name.replace('_', '-')}: expected a finite number, got {value}")
            settings[name] = value
    if getattr(args, "board_min_rate", None) is not None:
        settings["board_min_rate"] = _rate("--board-min-rate", args.board_min_rate).rate
    try:
        boards = BoardLimitsConfig(
            quota_window=settings.get("board_quota_window", _B.quota_window),
            limited_share=settings.get("board_limited_share", _B.limited_share),
            min_rate=settings.get("board_min_rate", _B.min_rate),
        )
        return CapacityConfig(
            bulkheads=bulkheads,
            rate_limits=rate_limits,
            max_waiting=settings.get("max_waiting", CapacityConfig.max_waiting),
            boards=boards,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
