"""GetWorkflowReport and the planning hooks of estimates and cost (server/estimates), for the servicer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from baton.v1 import plan_pb2, reports_pb2

from server.api.audit import check_exact
from server.api.errors import invalid
from server.engine import ExecutionState, fold
from server.estimates import CostModel, DurationRecorder, price_plan
from server.estimates._report import workflow_report
from server.store.base import TERMINAL_STATES, ExecutionQuery, ExecutionStore

__all__ = ["DEFAULT_REPORT_EXECUTIONS", "MAX_REPORT_EXECUTIONS", "Estimates"]

logger = logging.getLogger(__name__)

DEFAULT_REPORT_EXECUTIONS = 100
"""Executions a report reads when the request says 0."""

MAX_REPORT_EXECUTIONS = 1000
"""The most executions one report reads (each is folded from its history)."""


@dataclass(frozen=True)
class Estimates:
    """What the servicer needs of estimates and cost: plan hooks and the report."""

    store: ExecutionStore
    recorder: DurationRecorder | None
    """The recorded durations; None: plans keep their declared durations."""
    costs: CostModel
    timeout_factor: float = 0.0
    """Adaptive timeouts (server.planner rule 7); 0: off."""

    def planning(self) -> dict[str, Any]:
        """The keyword arguments of Planner.plan that bring history in."""
        if self.recorder is None:
            return {}
        return {"estimates": self.recorder.estimate, "timeout_factor": self.timeout_factor}

    def price(self, plan: plan_pb2.OrchestrationPlan) -> None:
        """Writes the cost model's prices into the plan (its unit_costs)."""
        price_plan(plan, self.costs)

    async def report(self, request: reports_pb2.GetWorkflowReportRequest) -> reports_pb2.WorkflowReport:
        """GetWorkflowReport: the newest ended executions of the type, folded and summed up.

        Raises:
            RequestError: INVALID_ARGUMENT naming workflow_type or max_executions.
        """
        if not request.workflow_type:
            raise invalid("workflow_type", "required")
        check_exact("workflow_type", request.workflow_type)
        if not 0 <= request.max_executions <= MAX_REPORT_EXECUTIONS:
            raise invalid(
                "max_executions",
                f"must be from 1 to {MAX_REPORT_EXECUTIONS} (0 means {DEFAULT_REPORT_EXECUTIONS}),"
                f" got {request.max_executions}",
            )
        wanted = request.max_executions or DEFAULT_REPORT_EXECUTIONS
        states: list[ExecutionState] = []
        token = ""
        while len(states) < wanted:
            page = await self.store.list_executions(
                ExecutionQuery(
                    workflow_type=request.workflow_type,
                    states=tuple(sorted(TERMINAL_STATES)),
                    page_size=min(wanted - len(states), 1000),
                    page_token=token,
                )
            )
            for record in page.records:
                try:
                    states.append(fold(record.execution_id, await self.store.read_events(record.execution_id)))
                except Exception as error:
                    # One unreadable history (quarantined) must not cost the whole report.
                    logger.warning("report: execution %s skipped: %s", record.execution_id, error)
            token = page.next_page_token
            if not token:
                break
        recorder = self.recorder
        return workflow_report(
            request.workflow_type,
            states[:wanted],
            recorder.stats if recorder is not None else lambda agent, operation: None,
            self.costs.unit_cost,
        )
