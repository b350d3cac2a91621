"""A scripted fleet for the engine's unit tests and the crash-point simulation (no gRPC).

Its effects go into a ledger keyed by idempotency key, as the reference Automation agent's do:
a repeated key is answered with the original result and applies nothing. Faults are scripted per
operation: fail before the effect, or apply the effect and then fail as a lost reply would
(DEADLINE_EXCEEDED), or apply it and never answer (the simulation crashes there).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from google.protobuf import struct_pb2

from server.engine.ports import AgentCall, AgentCallError, AgentReply
from tests.unit.fakes import FakeClock

#: Operations whose effect the ledger records (the rest only answer).
EFFECTS = frozenset({"SubmitApplication", "WithdrawApplication", "Notify"})


@dataclass
class Application:
    """One application in the ledger."""

    application_id: str
    user_id: str
    job_id: str
    key: str
    state: str = "submitted"


@dataclass(frozen=True)
class Fault:
    """What an operation does on one call instead of answering plainly."""

    error: str = "UNAVAILABLE"
    """The error's type."""
    after_effect: bool = False
    """Apply the effect first, then fail (a reply lost after the agent acted)."""
    hang_after_effect: bool = False
    """Apply the effect, then never answer."""
    retryable: bool = True


@dataclass
class LedgerFleet:
    """An AgentCaller over plausible canned outputs and an application ledger."""

    clock: FakeClock
    latency: float = 0.0
    applications: dict[str, Application] = field(default_factory=dict)
    answers: dict[tuple[str, str], AgentReply] = field(default_factory=dict)
    effects: list[tuple[str, str]] = field(default_factory=list)
    """(operation, key) of every effect applied, in order (a repeat would be a duplicate effect)."""
    calls: list[AgentCall] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    hang_at_effect: int | None = None
    """Apply this effect (counted from 1 over the fleet's life), then never answer: the simulation
    crashes the process there, between an agent's effect and its reply."""
    hung: bool = False
    """Whether the fleet has hung at `hang_at_effect`."""
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def fail(self, operation: str, *faults: Fault) -> None:
        self.faults.setdefault(operation, []).extend(faults)

    def live(self, user_id: str | None = None) -> list[Application]:
        """Applications not withdrawn."""
        return [a for a in self.applications.values() if a.state == "submitted" and user_id in (None, a.user_id)]

    async def call(self, call: AgentCall) -> AgentReply:
        self.calls.append(call)
        if self.latency:
            await self.clock.sleep_until(self.clock.now() + timedelta(seconds=self.latency))
        faults = self.faults.get(call.operation)
        fault = faults.pop(0) if faults else None
        if fault is not None and not (fault.after_effect or fault.hang_after_effect):
            raise AgentCallError(fault.error, f"injected {fault.error}", retryable=fault.retryable)
        key = call.idempotency_key
        replay = self.answers.get((call.operation, key)) if key else None
        if replay is not None:
            reply = replay
        else:
            reply = self._answer(call)
            if call.operation in EFFECTS:
                self.effects.append((call.operation, key))
                if key:
                    self.answers[(call.operation, key)] = reply
                if len(self.effects) == self.hang_at_effect:
                    self.hung = True
                    await asyncio.get_running_loop().create_future()  # never answers
        if fault is not None and fault.hang_after_effect:
            await asyncio.get_running_loop().create_future()  # never answers
        if fault is not None:
            raise AgentCallError(fault.error, f"injected {fault.error} after the effect", retryable=fault.retryable)
        return reply

    def _answer(self, call: AgentCall) -> AgentReply:
        payload = call.payload
        user_id = str(payload.get("user_id", ""))
        op = call.operation
        if op == "AnalyzeDocument":
            out: dict[str, Any] = {
                "document_id": payload.get("document_id") or "resume",
                "skills": ["python", "grpc"],
                "titles": ["Backend Engineer"],
                "years_experience": 7.0,
                "profile_completeness": 100.0,
            }
        elif op == "SearchJobs":
            out = {
                "jobs": [{"job_id": f"job-{n}", "title": "Backend Engineer", "company": f"C{n}"} for n in range(5)],
                "total_matches": 5.0,
                "sources_searched": ["linkedin"],
            }
        elif op == "ScoreMatches":
            jobs = payload.get("jobs") or []
            out = {
                "matches": [
                    {"job_id": j.get("job_id"), "score": 90.0 - i, "title": j.get("title"), "company": j.get("company")}
                    for i, j in enumerate(jobs)
                ]
            }
        elif op == "ScreenCompliance":
            out = {"compliant": True, "compliance_status": "compliant", "findings": []}
        elif op == "SubmitApplication":
            made = []
            for job_id in payload.get("job_ids") or []:
                application = Application(f"app-{next(self._ids)}", user_id, str(job_id), call.idempotency_key)
                self.applications[application.application_id] = application
                made.append({"application_id": application.application_id, "job_id": job_id, "state": "submitted"})
            if not made:
                raise AgentCallError("INVALID_ARGUMENT", "job_ids: must name at least one job", retryable=False)
            out = {"applications": made}
        elif op == "WithdrawApplication":
            withdrawn = []
            for application_id in payload.get("application_ids") or []:
                application = self.applications.get(str(application_id))
                if application is None or application.user_id != user_id:
                    raise AgentCallError("NOT_FOUND", f"no application {application_id}", retryable=False)
                application.state = "withdrawn"
                withdrawn.append({"application_id": application_id, "state": "withdrawn"})
            out = {"applications": withdrawn}
        elif op == "Notify":
            out = {"notification_id": f"n-{next(self._ids)}", "delivered": True}
        else:
            out = {"echo": op}
        struct = struct_pb2.Struct()
        struct.update(out)
        return AgentReply(output=struct, quality_score=90.0, quality_metrics={"completeness": 90.0, "accuracy": 90.0})
