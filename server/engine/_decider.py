"""The decider's shared parts: what a decision holds, recording events, the expression context.

`decide` (decide.py) is one `_Decider`, assembled from this base, the unwinding (unwind.py) and
the waiting for people (waits.py); each part calls the others only through the methods declared
here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from baton.v1 import execution_pb2, plan_pb2
from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from server.engine.expressions import resolve
from server.engine.fold import apply
from server.engine.model import Call, Step
from server.engine.ports import AgentCall, AgentCallError
from server.engine.state import ExecutionState, ItemRun, StepRun, Unwinding

E = execution_pb2
P = plan_pb2
logger = logging.getLogger(__name__)

ESCALATION_NOTICE = "escalate"
"""The key suffix of the ui_ux notification sent when a gate escalates to a person."""

FAILURE_NOTICE = "notify-failure"
"""The key suffix of the ui_ux notification sent when a step with notification_required fails."""

NOTICE_TIMEOUT = 5.0
"""Seconds a notice's call may take."""


@dataclass(frozen=True, slots=True)
class Launch:
    """A call for the runner to perform; its outcome comes back as an inbox `Outcome`."""

    step_id: str
    attempt: int
    call: AgentCall
    compensation: bool = False
    notice: bool = False
    """A notification whose outcome nothing waits for (an escalation's)."""
    item: int = -1
    """The item of a map step the call is of, from 0; -1 for the step's own call."""


@dataclass
class Decision:
    """What `decide` decided."""

    events: list[execution_pb2.ExecutionEvent] = field(default_factory=list)
    """To append, in order (already applied to the state)."""
    launches: list[Launch] = field(default_factory=list)
    """Calls to make once the events are durable."""
    refused: dict[int, str] = field(default_factory=dict)
    """Inbox index of a refused command → why (names the state)."""
    wake_at: datetime | None = None
    """When `decide` must run again if nothing arrives; None: only the inbox wakes it."""


class DeciderBase:
    """State and helpers of one `decide` call."""

    def __init__(self, state: ExecutionState, now: datetime, rng: Callable[[], float]) -> None:
        self.state = state
        self.plan = state.plan
        self.now = now
        self.rng = rng
        self.decision = Decision()
        self.now_ts = timestamp_pb2.Timestamp()
        self.now_ts.FromDatetime(now)
        self._context: dict[str, Any] | None = None
        self.map_items: dict[str, list[Any]] = {}
        """Map steps' for_each lists evaluated in this decision (maps.py, rule 2)."""
        self.actor: execution_pb2.Actor | None = None
        """Who made the command being decided; `record` stamps the first event it causes."""
        self.debug = state.started.execution_context.feature_flags.get("debug_mode", False)
        """Whether the execution runs in debug mode (its execution_context's feature flag):
        each attempt's request is then recorded in full in its started event."""

    # ---- recording ------------------------------------------------------------------------

    def record(self, kind: str, body: Message) -> None:
        """Makes the next event of `kind` and applies it to the state (one call: never one without the other)."""
        event = E.ExecutionEvent(sequence=self.state.last_sequence + 1, time=self.now_ts)
        if self.actor is not None:
            # The audit trail: only the event the client's command caused names them; what
            # follows from it (compensations, the end after them) the orchestrator does itself.
            event.actor.CopyFrom(self.actor)
            self.actor = None
        getattr(event, kind).CopyFrom(body)
        apply(self.state, event)
        self.decision.events.append(event)
        if kind in ("step_succeeded", "signal_received"):
            self._context = None  # outputs changed

    def record_request(self, into: struct_pb2.Struct, request: Callable[[], dict[str, Any]]) -> None:
        """Fills a started event's `request` (debug mode). Inputs that cannot be resolved leave it
        unset: launching the attempt resolves them again and records that failure."""
        try:
            into.update(request())
        except Exception:
            into.Clear()

    def at(self, seconds: float) -> timestamp_pb2.Timestamp:
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(self.now + timedelta(seconds=seconds))
        return ts

    def payload(self, call: Call, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The call's request: its configuration resolved over `context` (default: the execution's)."""
        if not call.dynamic:
            return dict(call.configuration)
        resolved: dict[str, Any] = resolve(call.configuration, self.context() if context is None else context)
        return resolved

    def context(self) -> Mapping[str, Any]:
        if self._context is None:
            state = self.state
            self._context = {
                "user": state.user_json(),
                "steps": {sid: run.output_json() for sid, run in state.steps.items() if run.output is not None},
                "execution": {
                    "execution_id": state.execution_id,
                    "user_id": state.user_id,
                    "workflow_type": self.plan.workflow_type,
                },
            }
        return self._context

    def notice(self, step: Step, key_suffix: str, title: str, message: str, data: Mapping[str, Any]) -> None:
        """Tells the user through ui_ux (Notify, in_app): a call nothing waits for, sent once the
        decision is durable, under key ``execution/step/SUFFIX`` (``execution/run-N/step/SUFFIX``
        in a rerun; the agent answers a repeat with the first result)."""
        self.decision.launches.append(
            Launch(
                step_id=step.step_id,
                attempt=0,
                call=AgentCall(
                    agent="ui_ux",
                    operation="Notify",
                    payload={
                        "user_id": self.state.user_id,
                        "channel": "in_app",
                        "title": title,
                        "message": message,
                        "data": {"execution_id": self.state.execution_id, "step_id": step.step_id, **data},
                    },
                    timeout=NOTICE_TIMEOUT,
                    idempotency_key=f"{self.key_prefix()}/{step.step_id}/{key_suffix}",
                    use_breaker=False,
                ),
                notice=True,
            )
        )

    def attempt_timeout(self, step: Step) -> float:
        """Seconds an attempt of the step's call may take: its timeout, cut to the execution's
        deadline while going forward (a probe or compensation while unwinding gets its own)."""
        timeout = step.timeout
        if self.state.unwinding is None:
            timeout = min(timeout, (self.state.deadline - self.now).total_seconds())
        return max(0.001, timeout)

    def key(self, step: Step, run: StepRun) -> str:
        """The idempotency key of the step's current call: the same for every attempt."""
        key = f"{self.key_prefix()}/{step.step_id}"
        return f"{key}/alt" if run.on_alternative and step.alternative is not None else key

    def key_prefix(self) -> str:
        """What every key of this run starts with: the execution, and from a rerun on its run
        (so an agent does not answer a rerun's call with the first run's answer)."""
        state = self.state
        return state.execution_id if state.run == 1 else f"{state.execution_id}/run-{state.run}"

    # ---- provided by the other parts ------------------------------------------------------------

    def start_attempt(self, step: Step, run: StepRun) -> None:
        """Records and launches the step's next attempt (decide.py)."""
        raise NotImplementedError

    def exhausted(self, step: Step, run: StepRun, error: AgentCallError) -> None:
        """Records that the step's retries are exhausted, and its fallback (decide.py)."""
        raise NotImplementedError

    def skip(self, step_id: str, cause: int, reason: str) -> None:
        """Records that the step is skipped (decide.py)."""
        raise NotImplementedError

    def unwind(self, end: Unwinding) -> None:
        """The one road to a failed or cancelled end (unwind.py)."""
        raise NotImplementedError

    def judge(self, step: Step, run: StepRun, score: float, metrics: dict[str, float]) -> None:
        """Evaluates the gates of a step that just succeeded (decide.py)."""
        raise NotImplementedError

    def start_item(self, step: Step, run: StepRun, item: ItemRun) -> None:
        """Records and launches the item's next attempt (maps.py)."""
        raise NotImplementedError

    def item_context(self, step: Step, index: int) -> dict[str, Any]:
        """The context of a map step's item's call (maps.py)."""
        raise NotImplementedError


def expression_error(what: str, exc: Exception) -> AgentCallError:
    """Any exception from evaluating an expression, as the step's non-retryable failure."""
    return AgentCallError("EXPRESSION_ERROR", f"{what}: {type(exc).__name__}: {exc}"[:2000], retryable=False)
