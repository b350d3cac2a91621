"""The folded state of an execution: its phase, each step's phase, and what the status reports.

The sub-states that used to be flag combinations on a step (``in_flight`` with a ``start_at``,
say) are named phases here; the fold (fold.py) moves between them by its transition table and
`decide` (decide.py) reads them. Everything here is derived from the events: nothing is
persisted apart from them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from baton.v1 import execution_pb2, journey_pb2
from google.protobuf import any_pb2, json_format, timestamp_pb2

from server.engine.calls import CallTally
from server.engine.model import Plan

E = execution_pb2

NO_DEADLINE = datetime.max.replace(tzinfo=UTC)

TERMINAL = frozenset({E.EXECUTION_STATE_COMPLETED, E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED})
"""Execution states that end it."""

RERUNNABLE = frozenset({E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED})
"""Terminal states a RerunExecution may take an execution out of (there is no TIMED_OUT state: a
run that timed out is FAILED with cause TIMEOUT)."""


NO_METRICS: Mapping[str, float] = MappingProxyType({})
"""The quality metrics of a step or item without any (one shared mapping, not a dict each)."""


class FoldError(ValueError):
    """An event does not fit the state it is applied to (a corrupt or foreign history)."""


class Phase(enum.Enum):
    """Where a step is. The status shows it as a StepState (see `STEP_STATE_OF`)."""

    PENDING = "pending"
    """Not started: waiting for its dependencies or its turn."""
    DELAYED = "delayed"
    """A scheduled step waiting for its start time (`StepRun.due`)."""
    IN_FLIGHT = "in flight"
    """An attempt was started and has no outcome yet."""
    BACKOFF = "backoff"
    """Waiting to start another attempt at `StepRun.due`: a retry, a gate's re-run or the switch to
    the alternative call (the last two due at once)."""
    WAITING = "waiting"
    """Waiting for a signal: an approval step, or a checkpoint whose gate escalated."""
    MAPPING = "mapping"
    """A map step (for_each) whose items run (`StepRun.items`); it ends when every item has."""
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


DONE = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.SKIPPED})
"""Phases after which a step never runs again (but for a gate's re-run)."""

STEP_STATE_OF = {
    Phase.PENDING: E.STEP_STATE_PENDING,
    Phase.DELAYED: E.STEP_STATE_PENDING,
    Phase.IN_FLIGHT: E.STEP_STATE_RUNNING,
    Phase.BACKOFF: E.STEP_STATE_RUNNING,
    Phase.WAITING: E.STEP_STATE_WAITING,
    Phase.MAPPING: E.STEP_STATE_RUNNING,
    Phase.COMPLETED: E.STEP_STATE_COMPLETED,
    Phase.FAILED: E.STEP_STATE_FAILED,
    Phase.SKIPPED: E.STEP_STATE_SKIPPED,
}

#: Errors of calls that were never sent: an open breaker, a spent retry budget, no agent capacity in
#: time, a suspended job board, a request that could not be built.
NEVER_SENT = frozenset(
    {"CIRCUIT_OPEN", "RETRY_BUDGET_EXHAUSTED", "AGENT_CAPACITY", "BOARD_SUSPENDED", "EXPRESSION_ERROR"}
)

#: Errors after which an agent certainly did not apply the call: it was never sent (an open
#: breaker, a request that could not be built) or the agent refused it. After any other error the
#: call may have taken effect, so a step that declares a compensation is in doubt.
NOT_APPLIED = frozenset(
    {
        "CIRCUIT_OPEN",
        "RETRY_BUDGET_EXHAUSTED",
        "AGENT_CAPACITY",
        "BOARD_SUSPENDED",
        "EXPRESSION_ERROR",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "FAILED_PRECONDITION",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
    }
)


@dataclass(slots=True)
class ErrorRecord:
    """One error of the execution, for the error summary."""

    step_id: str
    error_type: str
    message: str
    recovery_action: str
    impact: execution_pb2.Impact
    attempt: int = 0
    user_notified: bool = False
    item: int = -1
    """The item of a map step the error is of, from 0; -1 for the step's own."""


@dataclass(slots=True)
class Wait:
    """What a waiting step waits for."""

    kind: execution_pb2.WaitKind
    gate_id: str
    prompt: str
    data: dict[str, Any]
    """What an approval lets happen, with inputs given so far merged in."""
    since: timestamp_pb2.Timestamp
    timeout_at: datetime | None
    rejected: bool = False
    """A reject signal arrived; `decide` unwinds the execution."""
    reason: str = ""
    """The reason given with the reject."""


@dataclass(slots=True)
class CompensationRun:
    """A step's compensation (or the probe that settles whether its effect happened)."""

    state: execution_pb2.CompensationState = E.COMPENSATION_STATE_PENDING
    attempts: int = 0
    in_flight: bool = False
    due: datetime | None = None
    """When a retry is due; None when none waits."""
    error: str = ""
    agent: str = ""
    operation: str = ""
    order: int = 0
    """Position among the compensations that ran, from 1."""


class ItemPhase(enum.Enum):
    """Where one item of a map step is."""

    PENDING = "pending"
    """Not started: waiting for a free slot (the step's max_concurrency)."""
    IN_FLIGHT = "in flight"
    """An attempt was started and has no outcome yet."""
    BACKOFF = "backoff"
    """Waiting to start another attempt at `ItemRun.due`."""
    COMPLETED = "completed"
    SKIPPED = "skipped"
    """Its retries were exhausted under ITEM_FAILURE_SKIP_ITEM: null in the step's output."""
    FAILED = "failed"
    """Its retries were exhausted under ITEM_FAILURE_FAIL_STEP: the step fails."""


ITEM_DONE = frozenset({ItemPhase.COMPLETED, ItemPhase.SKIPPED, ItemPhase.FAILED})
"""Item phases after which an item's call is never made again (but for a probe while unwinding)."""
ITEM_OCCUPYING = frozenset({ItemPhase.IN_FLIGHT, ItemPhase.BACKOFF})
"""Item phases that hold one of the step's max_concurrency slots (a retry keeps its item's slot)."""


@dataclass(slots=True)
class ItemTally:
    """How many of a map step's items are in each phase, which wait for a retry, and where the
    pending ones begin: what deciding and rendering need, kept as the items move (`set_phase`),
    so that neither walks every item after every event (a map step may have thousands)."""

    counts: dict[ItemPhase, int]
    backoff: set[int] = field(default_factory=set)
    """Indexes of the items in BACKOFF."""
    next_pending: int = 0
    """No item before this index is PENDING (items start in index order)."""

    @classmethod
    def of(cls, count: int) -> ItemTally:
        return cls(counts={phase: 0 for phase in ItemPhase} | {ItemPhase.PENDING: count})

    def set_phase(self, item: ItemRun, phase: ItemPhase) -> None:
        """Moves `item` to `phase`, keeping the tally."""
        self.counts[item.phase] -= 1
        self.counts[phase] += 1
        if item.phase == ItemPhase.BACKOFF:
            self.backoff.discard(item.index)
        if phase == ItemPhase.BACKOFF:
            self.backoff.add(item.index)
        item.phase = phase

    def first_pending(self, items: list[ItemRun]) -> ItemRun | None:
        """The pending item of lowest index, if any."""
        while self.next_pending < len(items) and items[self.next_pending].phase != ItemPhase.PENDING:
            self.next_pending += 1
        return items[self.next_pending] if self.next_pending < len(items) else None


@dataclass(slots=True)
class ItemRun:
    """What has happened to one item of a map step so far."""

    index: int
    phase: ItemPhase = ItemPhase.PENDING
    attempts: int = 0
    due: datetime | None = None
    """When the next attempt is due (BACKOFF)."""
    output: any_pb2.Any | None = None
    quality_score: float = 0.0
    quality_metrics: Mapping[str, float] = field(default_factory=lambda: NO_METRICS)
    """The agent's metrics: a view of the succeeded event's, which `output` keeps anyway."""
    completed_at: int = 0
    """The sequence of the item's step_item_succeeded (0 before): the order of completion."""
    in_doubt: bool = False
    """A call was sent whose effect is not known (as `StepRun.in_doubt`)."""
    doubt_before: bool = False
    """`in_doubt` before the latest attempt (restored when that attempt was never sent)."""
    probes: int = 0
    """Attempts started while unwinding, to find out whether the item's effect happened."""
    error_type: str = ""
    """The last error's kind (see ErrorDetail.error_type); empty before any."""
    error_message: str = ""
    """The last error's message."""
    compensation: CompensationRun | None = None
    """Set once the execution unwinds and the item needs its compensation."""

    def output_json(self) -> Any:
        """The output as JSON with proto field names (None without output)."""
        return None if self.output is None else any_json(self.output)


@dataclass(slots=True)
class StepRun:
    """What has happened to one step so far."""

    step_id: str
    phase: Phase = Phase.PENDING
    attempts: int = 0
    """Attempts started, over every path."""
    path_attempts: int = 0
    """Attempts started on the current path (primary or alternative) that count toward its retries
    (an attempt that waits for an open breaker does not)."""
    circuit_waits: int = 0
    """Attempts on the current path an open breaker refused and that wait for its probe time."""
    on_alternative: bool = False
    agent: str = ""
    operation: str = ""
    due: datetime | None = None
    """When a delayed step or another attempt is due (DELAYED, BACKOFF); None means at once."""
    start_time: timestamp_pb2.Timestamp | None = None
    end_time: timestamp_pb2.Timestamp | None = None
    output: any_pb2.Any | None = None
    quality_score: float = 0.0
    quality_metrics: Mapping[str, float] = field(default_factory=lambda: NO_METRICS)
    """The agent's metrics: a view of the succeeded event's, which `output` keeps anyway."""
    gate_retries: frozenset[str] = frozenset()
    """Gates that have already re-run this step."""
    skip_cause: execution_pb2.SkipCause = E.SKIP_CAUSE_UNSPECIFIED
    degraded_reason: str = ""
    """What the step's skip (by a fallback, degraded mode or an approval's timeout) added to the
    execution's degraded reasons; empty otherwise (a rerun that resets the step takes it out)."""
    completed_at: int = 0
    """The sequence of the step's latest step_succeeded (0 before): the order of completion."""
    in_doubt: bool = False
    """A call was sent whose effect is not known: it may have been applied without a reply."""
    doubt_before: bool = False
    """`in_doubt` before the latest attempt (restored when that attempt was never sent)."""
    probes: int = 0
    """Attempts started while unwinding, to find out whether the step's effect happened."""
    wait: Wait | None = None
    """Set while WAITING."""
    compensation: CompensationRun | None = None
    """Set once the execution unwinds and the step needs its compensation."""
    items: list[ItemRun] | None = None
    """A map step's items, from its step_map_started on; None for an ordinary step or before."""
    tally: ItemTally | None = None
    """The items' phases counted (set with `items`); change an item's phase through it."""
    report: execution_pb2.StepTimingReport | None = None
    """The step's rendered timing report, cached until an event changes the step."""

    @property
    def state(self) -> execution_pb2.StepState:
        """The step's state as the status shows it."""
        return STEP_STATE_OF[self.phase]

    @property
    def done(self) -> bool:
        """Whether the step will not run again."""
        return self.phase in DONE

    def output_json(self) -> Any:
        """The output as JSON with proto field names (None without output): an object, or for a
        map step the list of its items' outputs. Not cached: a held execution would keep each
        output twice (a decision's expressions parse them once each, in `Decider.context`)."""
        return None if self.output is None else any_json(self.output)


@dataclass(frozen=True)
class Unwinding:
    """How an execution is to end when it does not complete: the input of the one unwind path."""

    outcome: execution_pb2.ExecutionState
    cause: execution_pb2.EndCause
    reason: str
    step_id: str = ""
    error_type: str = ""


@dataclass(slots=True)
class ExecutionState:
    """The fold of an execution's events."""

    execution_id: str
    started: execution_pb2.ExecutionStarted
    plan: Plan
    status: execution_pb2.ExecutionState = E.EXECUTION_STATE_QUEUED
    steps: dict[str, StepRun] = field(default_factory=dict)
    last_sequence: int = 0
    deadline: datetime = NO_DEADLINE
    """The execution-level deadline (moved on by the time spent paused)."""
    # Times are the events' own Timestamps (no conversions on the hot path).
    start_time: timestamp_pb2.Timestamp | None = None
    current_time: timestamp_pb2.Timestamp | None = None
    end_time: timestamp_pb2.Timestamp | None = None
    paused_at: datetime | None = None
    """When the execution was paused; None unless PAUSED."""
    resume_status: execution_pb2.ExecutionState = E.EXECUTION_STATE_QUEUED
    """The state a resume returns to (QUEUED until a step has started, else RUNNING)."""
    unwinding: Unwinding | None = None
    """Set from execution_unwinding on."""
    end_cause: execution_pb2.EndCause = E.END_CAUSE_UNSPECIFIED
    failure_reason: str = ""
    degraded_reasons: list[str] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    compensations_run: int = 0
    run: int = 1
    """Which run this is: 1, then 2, 3, ... from each execution_rerun on."""
    scope_start: int = 0
    """`compensations_run` when this run began: compensations ordered after it are this run's."""
    rerun_requests: set[str] = field(default_factory=set)
    """The request_ids of the reruns recorded (a retried RerunExecution records nothing)."""
    network_bytes: int = 0
    storage_bytes: int = 0
    calls: dict[tuple[str, str], CallTally] = field(default_factory=dict)
    """(agent, operation) → the calls made so far (server/engine/calls.py), for the cost."""
    call_slots: dict[tuple[str, int, bool], tuple[str, str, int]] = field(default_factory=dict)
    """(step_id, item, compensation) → (agent, operation, attempt) of its latest started attempt."""
    callback: execution_pb2.CallbackReport | None = None
    """The terminal callback's report (fold.py rule 8); None before callback_scheduled, and
    again once a rerun starts (until that run ends)."""
    callbacks_owed: set[str] = field(default_factory=set)
    """Delivery ids scheduled and not yet delivered or failed (an earlier run's may still be owed
    while a rerun runs)."""
    _user_json: dict[str, Any] | None = None
    results_cache: tuple[int, execution_pb2.Results] | None = None
    """(last_sequence, results) of an ended execution, rendered once (status.py): its outputs
    parsed again on every GetExecution would cost more than they are worth to keep. Never set
    while the execution runs, so a held execution keeps no parsed output."""

    @property
    def terminal(self) -> bool:
        """Whether the execution has ended."""
        return self.status in TERMINAL

    @property
    def user_id(self) -> str:
        """The owner."""
        return self.started.plan.user_id or self.started.user_context.user_id

    @property
    def state_name(self) -> str:
        """The execution's state in words ("running", "paused", ...), for messages."""
        return E.ExecutionState.Name(self.status).removeprefix("EXECUTION_STATE_").lower()

    @property
    def trace_id(self) -> str:
        """The execution's trace id (32 lowercase hex digits) from its stored ``traceparent``
        (``00-<trace id>-<span id>-<flags>``); empty when it was not traced, or not sampled (flag
        01 off: no span of it is recorded, so there is nothing to look up)."""
        parts = self.started.trace_parent.split("-")
        if len(parts) < 4 or len(parts[1]) != 32 or parts[1].strip("0123456789abcdef"):
            return ""
        try:
            sampled = int(parts[3], 16) & 1
        except ValueError:
            return ""
        return parts[1] if sampled else ""

    def user_json(self) -> dict[str, Any]:
        """The request's user context as JSON with proto field names (cached)."""
        if self._user_json is None:
            self._user_json = user_context_json(self.started.user_context)
        return self._user_json


def compensations(state: ExecutionState) -> list[tuple[str, int, CompensationRun]]:
    """Every compensation as (step_id, item or -1, its run): those that ran in the order they ran,
    then those not started yet in plan and item order."""
    found: list[tuple[str, int, CompensationRun]] = []
    for run in state.steps.values():
        if run.compensation is not None:
            found.append((run.step_id, -1, run.compensation))
        for item in run.items or ():
            if item.compensation is not None:
                found.append((run.step_id, item.index, item.compensation))
    # Those not started yet (order 0) come after those that ran.
    return sorted(found, key=lambda entry: entry[2].order or 1 << 30)


def any_json(output: any_pb2.Any) -> Any:
    """A packed message as JSON with proto field names; a well-known type (the Struct of an
    approval, the ListValue of a map step's join) as its plain JSON value."""
    converted = json_format.MessageToDict(output, preserving_proto_field_name=True)
    type_url = converted.pop("@type", "")
    if type_url.startswith("type.googleapis.com/google.protobuf.") and "value" in converted:
        # Well-known types are wrapped as {"value": ...} in JSON.
        return converted["value"]
    return converted


def user_context_json(user_context: journey_pb2.UserJourney) -> dict[str, Any]:
    """A user context as the JSON that expressions see."""
    return json_format.MessageToDict(user_context, preserving_proto_field_name=True)
