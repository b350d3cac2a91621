"""Plan.from_proto keeps what a plan builds, for plans sent again: shared where equal, never mixed up."""

from __future__ import annotations

from server.engine import model
from server.engine.model import PLAN_CACHE, Plan
from tests.unit.engine_support import plan, step


def test_the_same_plan_under_another_id_shares_its_steps_and_keeps_its_own_id_and_type() -> None:
    first = plan(step("A"), step("B", "A"))
    again = plan(step("A"), step("B", "A"))
    again.plan_id, again.workflow_type = "plan-2", "other"
    built, rebuilt = Plan.from_proto(first), Plan.from_proto(again)
    assert (built.plan_id, built.workflow_type) == ("plan-1", "test")
    assert (rebuilt.plan_id, rebuilt.workflow_type) == ("plan-2", "other")
    assert rebuilt.steps is built.steps


def test_a_plan_that_differs_in_a_step_a_strategy_or_a_gate_is_built_afresh() -> None:
    base = Plan.from_proto(plan(step("A", retries=1)))
    other_step = Plan.from_proto(plan(step("A", retries=2)))
    other_strategy = Plan.from_proto(plan(step("A", retries=1), max_retries=5))
    gated_proto = plan(step("A", retries=1))
    gated_proto.quality_gates.add(gate_id="g", checkpoint="A")
    gated = Plan.from_proto(gated_proto)
    assert other_step.steps["A"].retries == 2 and base.steps["A"].retries == 1
    assert other_strategy.retry.max_retries == 5 and base.retry.max_retries != 5
    assert "A" in gated.gates and not base.gates


def test_the_cache_keeps_at_most_plan_cache_plans() -> None:
    for index in range(PLAN_CACHE + 10):
        Plan.from_proto(plan(step(f"S{index}")))
    assert len(model._PLANS) == PLAN_CACHE
