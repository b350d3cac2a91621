"""The cost model: the price of one call of each agent operation, from YAML (see costs.yaml).

Rules:
1. A price is looked up as operations["agent.Operation"], then agents["agent"], then default.
2. Every price is a finite number from 0 to MAX_UNIT_COST; every agent and operation named must
   exist (agents_clients.catalog); unknown keys are refused. A bad file is a ConfigError naming
   the key, at start-up.
3. The planner's plans carry the prices of the operations they may call (OrchestrationPlan.
   unit_costs, by `price_plan`), so an execution is priced as of its submission.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from baton.v1 import plan_pb2

from agents_clients.catalog import AGENTS, UnknownAgentError, UnknownOperationError, operation
from server.config import ConfigError

__all__ = ["BUILT_IN_COSTS", "MAX_UNIT_COST", "CostModel", "price_plan"]

BUILT_IN_COSTS = Path(__file__).with_name("costs.yaml")
"""The built-in prices (package data)."""

MAX_UNIT_COST = 1e6
"""The highest price one call may have."""

_KEYS = frozenset({"default", "agents", "operations"})


@dataclass(frozen=True)
class CostModel:
    """Prices of agent calls (rule 1)."""

    default: float = 1.0
    """The price of a call no other entry names. Default 1."""
    agents: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """agent → the price of any of its operations' calls."""
    operations: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """"agent.Operation" → the price of its calls."""

    def unit_cost(self, agent: str, operation_name: str) -> float:
        """The price of one call (rule 1)."""
        key = f"{agent}.{operation_name}"
        if key in self.operations:
            return self.operations[key]
        return self.agents.get(agent, self.default)

    @classmethod
    def load(cls, path: Path | str | None = None) -> CostModel:
        """Reads a cost file (the built-in one when None).

        Raises:
            ConfigError: the file cannot be read or breaks rule 2; the message names the key.
        """
        source = Path(path) if path is not None else BUILT_IN_COSTS
        try:
            document = yaml.safe_load(source.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ConfigError(f"costs: cannot read {source}: {error}") from None
        return cls.from_mapping(document if document is not None else {}, str(source))

    @classmethod
    def from_mapping(cls, document: Any, source: str = "costs") -> CostModel:
        """Validates a parsed cost document (rule 2).

        Raises:
            ConfigError: naming the bad key.
        """
        if not isinstance(document, dict):
            raise ConfigError(f"{source}: must be a mapping with default, agents and operations")
        unknown = sorted(str(k) for k in document if k not in _KEYS)
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r} (expected default, agents, operations)")
        default = _price(source, "default", document.get("default", 1.0))
        agents: dict[str, float] = {}
        for agent, price in _section(source, document, "agents").items():
            if agent not in AGENTS:
                raise ConfigError(f"{source}: agents.{agent}: unknown agent; known agents: {', '.join(AGENTS)}")
            agents[agent] = _price(source, f"agents.{agent}", price)
        operations: dict[str, float] = {}
        for key, price in _section(source, document, "operations").items():
            agent, dot, name = key.partition(".")
            try:
                if not dot:
                    raise UnknownOperationError("must be agent.Operation")
                operation(agent, name)
            except (UnknownAgentError, UnknownOperationError) as error:
                raise ConfigError(f"{source}: operations.{key}: {error}") from None
            operations[key] = _price(source, f"operations.{key}", price)
        return cls(default, MappingProxyType(agents), MappingProxyType(operations))


def _section(source: str, document: dict[Any, Any], name: str) -> dict[str, Any]:
    section = document.get(name) or {}
    if not isinstance(section, dict) or not all(isinstance(k, str) for k in section):
        raise ConfigError(f"{source}: {name} must be a mapping of names to prices")
    return section


def _price(source: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{source}: {key} must be a number, not {value!r}")
    price = float(value)
    if not math.isfinite(price) or not 0.0 <= price <= MAX_UNIT_COST:
        raise ConfigError(f"{source}: {key} must be from 0 to {MAX_UNIT_COST:g}, not {value!r}")
    return price


def price_plan(plan: plan_pb2.OrchestrationPlan, costs: CostModel) -> None:
    """Sets plan.unit_costs to the prices of every call the plan may make (rule 3), replacing any."""
    plan.unit_costs.clear()
    for step in plan.workflow_steps:
        calls = [(step.agent, step.operation)]
        handling = step.error_handling
        if handling.HasField("alternative"):
            calls.append((handling.alternative.agent, handling.alternative.operation))
        if step.HasField("compensation"):
            calls.append((step.compensation.agent, step.compensation.operation))
        for agent, name in calls:
            if agent and name:
                plan.unit_costs[f"{agent}.{name}"] = costs.unit_cost(agent, name)
