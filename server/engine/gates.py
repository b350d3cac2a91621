"""Quality gates: weighted criteria over a step's quality report, scored 0-100."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from baton.v1 import plan_pb2

from server.engine.model import QualityGate

_OPERATORS = {
    plan_pb2.COMPARISON_OPERATOR_GT: lambda value, target: value > target,
    plan_pb2.COMPARISON_OPERATOR_LT: lambda value, target: value < target,
    plan_pb2.COMPARISON_OPERATOR_EQ: lambda value, target: abs(value - target) < 1e-9,
    plan_pb2.COMPARISON_OPERATOR_GTE: lambda value, target: value >= target,
    plan_pb2.COMPARISON_OPERATOR_LTE: lambda value, target: value <= target,
}


@dataclass(frozen=True)
class GateVerdict:
    """A gate's evaluation."""

    score: float
    """100 * the weight of passing criteria / the total weight (100 with no weight)."""
    passed: bool
    """Whether the score reached the gate's pass_score."""
    details: tuple[str, ...]
    """One line per criterion: the metric, its value, the comparison and whether it passed."""


def evaluate_gate(gate: QualityGate, score: float, metrics: Mapping[str, float]) -> GateVerdict:
    """Evaluates a gate over a response's quality report ("score" names the overall score).

    A metric the report lacks fails its criterion.
    """
    total = passed_weight = 0.0
    details = []
    for criterion in gate.criteria:
        value = score if criterion.metric == "score" else metrics.get(criterion.metric)
        compare = _OPERATORS.get(criterion.operator)
        ok = value is not None and compare is not None and compare(value, criterion.value)
        total += criterion.weight
        passed_weight += criterion.weight if ok else 0.0
        op = plan_pb2.ComparisonOperator.Name(criterion.operator).removeprefix("COMPARISON_OPERATOR_").lower()
        details.append(f"{criterion.metric}={value} {op} {criterion.value}: {'pass' if ok else 'fail'}")
    gate_score = 100.0 * passed_weight / total if total else 100.0
    return GateVerdict(score=gate_score, passed=gate_score >= gate.pass_score - 1e-9, details=tuple(details))
