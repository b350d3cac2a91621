"""The crash-point simulation: every scenario, crashed at every write and between every effect and its reply.

For each scenario: run once to learn its boundaries (store writes, agent effects), then for every
boundary run it again, crash there, recover from the store and run to the end, and check the
invariants (tests/simulation/harness.py `violations`). Seeded and deterministic; the number of
crash points tried is printed in the test summary.
"""

from __future__ import annotations

import pytest
from baton.v1 import execution_pb2 as E

from tests.simulation.conftest import CrashTally
from tests.simulation.harness import Run, violations
from tests.simulation.scenarios import SCENARIOS, Scenario

SEED = 20261130

#: What each scenario must end as when nothing crashes, so that a scenario cannot silently stop
#: exercising what it names.
EXPECTED = {
    "document_analysis": E.EXECUTION_STATE_COMPLETED,
    "job_discovery": E.EXECUTION_STATE_COMPLETED,
    "application_automation": E.EXECUTION_STATE_COMPLETED,
    "optimization": E.EXECUTION_STATE_COMPLETED,
    "application_manual_approve": E.EXECUTION_STATE_COMPLETED,
    "application_manual_reject": E.EXECUTION_STATE_CANCELLED,
    "application_manual_timeout": E.EXECUTION_STATE_FAILED,
    "application_notify_fails": E.EXECUTION_STATE_FAILED,
    "application_cancelled": E.EXECUTION_STATE_CANCELLED,
    "retries_and_fallbacks": E.EXECUTION_STATE_COMPLETED,
    "gate_stop": E.EXECUTION_STATE_FAILED,
    "gate_continue_degraded": E.EXECUTION_STATE_COMPLETED,
    "gate_retry": E.EXECUTION_STATE_FAILED,
    "gate_escalate_approve": E.EXECUTION_STATE_COMPLETED,
    "gate_escalate_reject": E.EXECUTION_STATE_FAILED,
    "compensation_in_reverse": E.EXECUTION_STATE_FAILED,
    "compensation_retried": E.EXECUTION_STATE_FAILED,
    "lost_reply_retried": E.EXECUTION_STATE_COMPLETED,
    "lost_reply_probed": E.EXECUTION_STATE_FAILED,
    "map_items_compensated": E.EXECUTION_STATE_FAILED,
    "map_item_lost_reply": E.EXECUTION_STATE_FAILED,
    "map_item_skipped": E.EXECUTION_STATE_COMPLETED,
    "approval_then_submit": E.EXECUTION_STATE_COMPLETED,
    "reject_after_submit": E.EXECUTION_STATE_CANCELLED,
    "approval_timeout_fail": E.EXECUTION_STATE_FAILED,
    "approval_timeout_skip": E.EXECUTION_STATE_COMPLETED,
    "approval_timeout_approve": E.EXECUTION_STATE_COMPLETED,
    "pause_resume": E.EXECUTION_STATE_COMPLETED,
    "cancel_after_submit": E.EXECUTION_STATE_CANCELLED,
    "rerun_after_failure": E.EXECUTION_STATE_COMPLETED,
    "rerun_from_step_after_cancel": E.EXECUTION_STATE_COMPLETED,
}

#: Scenarios whose run must compensate something, and must leave nothing applied.
UNWINDS = {
    "application_manual_reject",
    "application_notify_fails",
    "application_cancelled",
    "gate_stop",
    "gate_retry",
    "gate_escalate_reject",
    "compensation_in_reverse",
    "compensation_retried",
    "lost_reply_probed",
    "map_items_compensated",
    "map_item_lost_reply",
    "reject_after_submit",
    "approval_timeout_fail",
    "cancel_after_submit",
}


#: Scenarios that end their first run and rerun it once.
RERUNS = {"rerun_after_failure", "rerun_from_step_after_cancel"}


def test_every_scenario_has_an_expected_end() -> None:
    assert {s.name for s in SCENARIOS} == set(EXPECTED)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_a_crash_at_any_point_breaks_no_invariant(scenario: Scenario, crash_tally: CrashTally) -> None:
    baseline = await Run(scenario, SEED).run()
    assert violations(scenario, baseline) == []
    assert baseline.state.status == EXPECTED[scenario.name], baseline.state.failure_reason
    if scenario.name in RERUNS:
        assert [e.WhichOneof("kind") for e in baseline.events].count("execution_rerun") == 1
        assert baseline.state.run == 2
    if scenario.name in UNWINDS:
        kinds = [e.WhichOneof("kind") for e in baseline.events]
        assert "execution_unwinding" in kinds or not baseline.fleet.effects, kinds
    points = [("write", n) for n in range(1, baseline.writes + 1)]
    points += [("effect", n) for n in range(1, baseline.effects + 1)]
    found: dict[str, list[str]] = {}
    for where, n in points:
        run = Run(
            scenario, SEED, crash_write=n if where == "write" else None, crash_effect=n if where == "effect" else None
        )
        outcome = await run.run()
        broken = violations(scenario, outcome)
        if broken:
            found[f"crash at {where} {n}"] = broken
        crash_tally.add(scenario.name, crashed=run.recovered > 0, broken=bool(broken))
    assert found == {}
