"""Quarantined executions at the API: their history cannot be read or folded, so they are FAILED.

An execution whose stored events cannot be decoded (CorruptHistoryError) or folded (FoldError,
or anything else the fold raises) is marked in the store once, logged once with its id and the
error, and from then on answered from its summary row alone, without reading its events:
GetExecution and CancelExecution return a FAILED status with end cause HISTORY_UNREADABLE;
WatchExecution, RerunExecution and the step-level RPCs answer FAILED_PRECONDITION. Never
INTERNAL: the rest of the server goes on serving every other execution.
"""

from __future__ import annotations

import dataclasses
import logging

import grpc
from baton.v1 import execution_pb2

from server.api.errors import RequestError
from server.store.base import CorruptHistoryError, ExecutionRecord, ExecutionStore

logger = logging.getLogger(__name__)

E = execution_pb2

#: ErrorDetail.error_type of a quarantined execution.
HISTORY_UNREADABLE = "HISTORY_UNREADABLE"

# The recorded error is cut to this many characters: it is shown in every status of the
# execution, and a fold error may quote a large event.
_MAX_ERROR = 2048


def describe(error: BaseException) -> str:
    """The error as recorded: what failed and why, bounded in length."""
    text = str(error) if isinstance(error, CorruptHistoryError) else f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


async def quarantine(store: ExecutionStore, record: ExecutionRecord, error: BaseException) -> ExecutionRecord:
    """Quarantines the execution in the store and logs it; returns the record as it now is."""
    reason = describe(error)
    await store.quarantine(record.execution_id, reason)
    logger.error("execution %s quarantined: its history cannot be read or folded: %s", record.execution_id, reason)
    return dataclasses.replace(record, state=E.EXECUTION_STATE_FAILED, quarantine_error=reason)


def quarantined_status(record: ExecutionRecord) -> execution_pb2.ExecutionStatus:
    """The status of a quarantined execution, from its summary row alone."""
    status = E.ExecutionStatus(
        execution_id=record.execution_id,
        plan_id=record.plan_id,
        status=E.EXECUTION_STATE_FAILED,
        user_id=record.user_id,
        workflow_type=record.workflow_type,
        failure_reason=f"the execution's history is unreadable, so it was stopped: {record.quarantine_error}",
        last_sequence=record.last_sequence,
        end_cause=E.END_CAUSE_HISTORY_UNREADABLE,
    )
    status.performance_metrics.start_time.FromDatetime(record.created_at)
    summary = status.error_summary
    summary.total_errors = 1
    summary.critical_errors = 1
    summary.error_details.add(
        error_type=HISTORY_UNREADABLE,
        error_message=record.quarantine_error,
        recovery_action="fail",
        impact=E.IMPACT_CRITICAL,
    )
    return status


def quarantined_error(record: ExecutionRecord) -> RequestError:
    """The FAILED_PRECONDITION of an RPC that needs the history of a quarantined execution."""
    return RequestError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"execution_id: execution {record.execution_id!r} is quarantined (FAILED): its history cannot be read"
        f" or folded: {record.quarantine_error}",
    )
