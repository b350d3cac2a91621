"""Automation: submits and withdraws applications in the ledger, once per idempotency key.

A repeated key is answered with the original response, even for a different request (see
ApplicationLedger.once for why).
"""

from __future__ import annotations

import time

import grpc
from baton.v1 import automation_pb2, automation_pb2_grpc, common_pb2

from agents._jobs import JobCatalog
from agents._ledger import ApplicationLedger, NewApplication, UnknownApplicationsError
from agents._runtime import (
    AgentError,
    AgentRuntime,
    invalid_argument,
    not_found,
    operation,
    quality,
    require_user_id,
)

#: The request metadata key that makes a submission or a withdrawal idempotent.
IDEMPOTENCY_KEY = "baton-idempotency-key"
#: The most jobs one submission may apply to.
MAX_JOBS = 50
#: The most applications one withdrawal may name.
MAX_WITHDRAWALS = 100
#: The longest idempotency key accepted, in characters.
MAX_KEY_LENGTH = 512
#: The board of a job the catalog does not know (the employer's own site).
DIRECT_SOURCE = "direct"


def idempotency_key(context: grpc.aio.ServicerContext) -> str:
    """Returns the request's ``baton-idempotency-key`` metadata, or "" when it has none.

    Raises:
        AgentError: INVALID_ARGUMENT when the key is longer than MAX_KEY_LENGTH.
    """
    for key, value in context.invocation_metadata() or ():
        if key == IDEMPOTENCY_KEY:
            text = value.decode() if isinstance(value, bytes) else str(value)
            if len(text) > MAX_KEY_LENGTH:
                raise invalid_argument(IDEMPOTENCY_KEY, f"is longer than {MAX_KEY_LENGTH} characters")
            return text
    return ""


class AutomationServicer(automation_pb2_grpc.AutomationServicer):
    """Applies users to jobs; the ledger makes every answered request durable and idempotent."""

    def __init__(self, ledger: ApplicationLedger, catalog: JobCatalog) -> None:
        self.runtime = AgentRuntime("automation", ("SubmitApplication", "WithdrawApplication", "ListApplications"))
        self._ledger = ledger
        self._catalog = catalog
        self.account_health = dict.fromkeys((*catalog.sources, DIRECT_SOURCE), common_pb2.ACCOUNT_HEALTH_ACTIVE)

    def boards_health(self) -> dict[str, common_pb2.AccountHealth]:
        """Each board's account health: active unless the faults in force say otherwise."""
        faults = self.runtime.faults
        if faults is None or not faults.board_health:
            return self.account_health
        return {**self.account_health, **faults.board_health}

    @operation
    def SubmitApplication(
        self, request: automation_pb2.SubmitApplicationRequest, context: grpc.aio.ServicerContext
    ) -> automation_pb2.SubmitApplicationResponse:
        """Records one application per job, once per idempotency key."""
        require_user_id(request.user_id)
        if not request.job_ids:
            raise invalid_argument("job_ids", "must name at least one job")
        if len(request.job_ids) > MAX_JOBS:
            raise invalid_argument("job_ids", f"names {len(request.job_ids)} jobs; at most {MAX_JOBS} are allowed")
        seen: set[str] = set()
        applications = []
        health = self.boards_health()
        for index, job_id in enumerate(request.job_ids):
            if not job_id.strip():
                raise invalid_argument(f"job_ids[{index}]", "is empty")
            if job_id in seen:
                raise invalid_argument(f"job_ids[{index}]", f"repeats job {job_id!r}")
            seen.add(job_id)
            posting = self._catalog.get(job_id)
            source = posting.source if posting is not None else DIRECT_SOURCE
            if health.get(source) == common_pb2.ACCOUNT_HEALTH_SUSPENDED:
                raise AgentError(
                    grpc.StatusCode.FAILED_PRECONDITION, f"the account on {source} is suspended; job {job_id}"
                )
            applications.append(NewApplication(job_id=job_id, source=source))
        key = idempotency_key(context)
        known = sum(1 for a in applications if a.source != DIRECT_SOURCE)

        def apply() -> automation_pb2.SubmitApplicationResponse:
            made = self._ledger.insert(
                request.user_id,
                applications,
                key=key,
                document_id=request.document_id or "resume",
                cover_note=request.cover_note,
                now_ns=time.time_ns(),
            )
            # Accuracy is how many jobs were found on a known board; an unknown one went "direct".
            return automation_pb2.SubmitApplicationResponse(
                applications=made,
                quality=quality(success_rate=100.0, accuracy=100.0 * known / len(applications)),
            )

        return self._ledger.once(
            "SubmitApplication", request.user_id, key, automation_pb2.SubmitApplicationResponse, apply
        )

    @operation
    def WithdrawApplication(
        self, request: automation_pb2.WithdrawApplicationRequest, context: grpc.aio.ServicerContext
    ) -> automation_pb2.WithdrawApplicationResponse:
        """Withdraws the user's applications, once per idempotency key."""
        require_user_id(request.user_id)
        if not request.application_ids:
            raise invalid_argument("application_ids", "must name at least one application")
        if len(request.application_ids) > MAX_WITHDRAWALS:
            raise invalid_argument(
                "application_ids",
                f"names {len(request.application_ids)} applications; at most {MAX_WITHDRAWALS} are allowed",
            )
        for index, application_id in enumerate(request.application_ids):
            if not application_id.strip():
                raise invalid_argument(f"application_ids[{index}]", "is empty")
        application_ids = list(dict.fromkeys(request.application_ids))
        key = idempotency_key(context)

        def apply() -> automation_pb2.WithdrawApplicationResponse:
            withdrawn = self._ledger.withdraw(
                request.user_id, application_ids, reason=request.reason, now_ns=time.time_ns()
            )
            return automation_pb2.WithdrawApplicationResponse(
                applications=withdrawn, quality=quality(success_rate=100.0)
            )

        try:
            return self._ledger.once(
                "WithdrawApplication", request.user_id, key, automation_pb2.WithdrawApplicationResponse, apply
            )
        except UnknownApplicationsError as error:
            raise not_found(f"no application {', '.join(error.application_ids)} of user {request.user_id}") from None

    @operation
    def ListApplications(
        self, request: automation_pb2.ListApplicationsRequest, context: grpc.aio.ServicerContext
    ) -> automation_pb2.ListApplicationsResponse:
        """Returns the user's applications, oldest first."""
        require_user_id(request.user_id)
        return automation_pb2.ListApplicationsResponse(
            applications=self._ledger.list(request.user_id), quality=quality(completeness=100.0)
        )

    async def GetStatus(
        self, request: common_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.AgentStatus:
        """Returns the agent's status with each board's account health."""
        status = self.runtime.status()
        status.account_health.update(self.boards_health())
        status.metrics.update(
            {
                "success_rate": round(100.0 - status.error_rate, 2),
                "queue_backlog": self.runtime.in_flight,
                "applications_submitted": self._ledger.submitted,
                "applications_withdrawn": self._ledger.withdrawn,
                "idempotent_replays": self._ledger.replays,
            }
        )
        return status
