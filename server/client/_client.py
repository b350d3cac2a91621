"""BatonClient: the orchestrator's gRPC API as typed async methods, with a watch that resumes by itself."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

import grpc
from baton.v1 import execution_pb2, journey_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from server.client._channel import RECONNECT_OPTIONS, Tls, open_channel
from server.client._errors import NotFound, from_rpc_error
from server.client._outputs import StepResult, decode_step_output
from server.client._watch import Reconnect, Watch

O = orchestrator_pb2  # noqa: E741
E = execution_pb2

WATCH_METHOD = "/baton.v1.Orchestrator/WatchExecution"

ViewName = Literal["full", "events", "states"]

VIEWS: Mapping[str, orchestrator_pb2.WatchView] = {
    "full": O.WATCH_VIEW_FULL,
    "events": O.WATCH_VIEW_EVENTS,
    "states": O.WATCH_VIEW_STATE_CHANGES,
}
"""A watch's views by name (WatchExecutionRequest.view): ``full`` a status with every update;
``events`` every event, a status only when the state changes; ``states`` only the updates where
the state changes (the cheapest way to wait for the end)."""

SIGNALS: Mapping[str, execution_pb2.Signal] = {
    "approve": E.SIGNAL_APPROVE,
    "reject": E.SIGNAL_REJECT,
    "input": E.SIGNAL_INPUT,
}
"""The signals by name."""

_Reply = TypeVar("_Reply", bound=Message)

JsonObject = Mapping[str, Any]


def _struct(payload: JsonObject | struct_pb2.Struct | None) -> struct_pb2.Struct:
    if isinstance(payload, struct_pb2.Struct):
        return payload
    struct = struct_pb2.Struct()
    if payload:
        struct.update(payload)
    return struct


def _journey(user_id: str, user_context: journey_pb2.UserJourney | JsonObject | None) -> journey_pb2.UserJourney:
    if isinstance(user_context, journey_pb2.UserJourney):
        journey = journey_pb2.UserJourney()
        journey.CopyFrom(user_context)
    else:
        journey = json_format.ParseDict(dict(user_context or {}), journey_pb2.UserJourney())
    if user_id:
        journey.user_id = user_id
    return journey


def _view(view: ViewName | orchestrator_pb2.WatchView) -> orchestrator_pb2.WatchView:
    if isinstance(view, str):
        try:
            return VIEWS[view]
        except KeyError:
            raise ValueError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}") from None
    return view


class BatonClient:
    """A client of the baton orchestrator over gRPC.

    Use it as an async context manager (the channel closes on exit)::

        async with BatonClient("127.0.0.1:50051") as client:
            execution = await client.submit("document_analysis", user_id="u1")
            status = await client.wait(execution.execution_id)

    Every failed call raises a subclass of ``server.client.BatonError`` carrying the status code
    and the server's details (``InvalidArgument``, ``NotFound``, ``FailedPrecondition``...).
    Calls that are safe to repeat (submit and rerun, which carry a request_id, and the reads) are
    retried a few times while the server is UNAVAILABLE; controls are not.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str = "",
        tls: Tls | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        reconnect: Reconnect | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        options: Sequence[tuple[str, Any]] = RECONNECT_OPTIONS,
    ) -> None:
        """Opens a channel to the orchestrator (lazily: nothing is sent before the first call).

        Args:
            target: HOST:PORT of the orchestrator.
            token: a bearer token (JWT) for a server run with ``--auth jwt``; empty for none.
            tls: TLS settings (``Tls()``: verify against the system's roots); None for plaintext.
            timeout: the deadline of every unary call, in seconds (default 10).
            retries: attempts of a retried call while the server is UNAVAILABLE (default 3).
            reconnect: how watches resume (default ``Reconnect()``: 20 attempts, backoff to 2 s).
            interceptors: more client interceptors (a tracing span's, say), run before the token's.
            options: channel options (default: a short reconnect backoff, so a restarted server
                is found again quickly).

        Raises:
            agents_clients.tls.TlsError: a TLS file is missing or wrong.
        """
        if timeout <= 0:
            raise ValueError(f"timeout: expected seconds above 0, got {timeout}")
        if retries < 1:
            raise ValueError(f"retries: expected 1 or more, got {retries}")
        self.target = target
        self.timeout = timeout
        self.retries = retries
        self.reconnect = reconnect or Reconnect()
        self.channel = open_channel(target, token=token, tls=tls, interceptors=interceptors, options=options)
        self.stub = orchestrator_pb2_grpc.OrchestratorStub(self.channel)  # type: ignore[no-untyped-call]
        """The generated stub on the same channel, for what this class does not wrap (its errors are grpc's)."""
        self._raw_watch = self.channel.unary_stream(
            WATCH_METHOD,
            request_serializer=O.WatchExecutionRequest.SerializeToString,
            response_deserializer=None,
        )

    async def __aenter__(self) -> BatonClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self.channel.close()

    async def _call(self, method: Callable[..., Any], request: Message, *, retry: bool) -> Any:
        """One unary call with the client's deadline; retried while UNAVAILABLE when `retry`."""
        attempts = self.retries if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return await method(request, timeout=self.timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == attempts:
                    raise from_rpc_error(exc) from exc
            await asyncio.sleep(0.3 * attempt)
        raise AssertionError("unreachable")

    # ---- submitting and planning ------------------------------------------------------------

    async def submit(
        self,
        workflow_type: str | orchestrator_pb2.ExecuteWorkflowRequest = "",
        *,
        user_id: str = "",
        user_context: journey_pb2.UserJourney | JsonObject | None = None,
        plan: plan_pb2.OrchestrationPlan | None = None,
        options: journey_pb2.ExecutionOptions | None = None,
        callback_url: str = "",
        request_id: str = "",
        idempotent: bool = True,
    ) -> orchestrator_pb2.Execution:
        """Starts an execution (ExecuteWorkflow) and returns it with its plan.

        The request always carries a request_id (a fresh one unless given), so a retry after a
        lost answer returns the same execution (``Execution.created`` is then False).

        Args:
            workflow_type: the workflow to plan (``document_analysis``...), or a whole
                ExecuteWorkflowRequest (the other arguments must then be left out).
            user_id: the user (sets user_context.user_id).
            user_context: the user's journey, as a message or as JSON with proto field names.
            plan: an explicit plan to run instead of planning workflow_type.
            options: priority, timeout and quality level.
            callback_url: where to POST the terminal status.
            request_id: the idempotency key; default a fresh ``client-<uuid>``.
            idempotent: False sends no request_id when none is given, and then does not retry
                (a retry could start a second execution): for a benchmark whose workload is
                fixed without one.
        """
        if isinstance(workflow_type, O.ExecuteWorkflowRequest):
            if user_id or user_context or plan or options or callback_url or request_id:
                raise ValueError("submit: pass either a request or its fields, not both")
            request = workflow_type
            if idempotent and not request.request_id:
                request = O.ExecuteWorkflowRequest()
                request.CopyFrom(workflow_type)  # the caller's message is left as it was
        else:
            request = O.ExecuteWorkflowRequest(
                workflow_type=workflow_type, user_context=_journey(user_id, user_context), callback_url=callback_url
            )
            if plan is not None:
                request.plan.CopyFrom(plan)
            if options is not None:
                request.execution_options.CopyFrom(options)
            request.request_id = request_id
        if idempotent and not request.request_id:
            request.request_id = f"client-{uuid.uuid4()}"
        retry = bool(request.request_id)
        execution: orchestrator_pb2.Execution = await self._call(self.stub.ExecuteWorkflow, request, retry=retry)
        return execution

    async def plan(
        self,
        workflow_type: str,
        *,
        user_id: str = "",
        user_context: journey_pb2.UserJourney | JsonObject | None = None,
        options: journey_pb2.ExecutionOptions | None = None,
        version: str = "",
    ) -> plan_pb2.OrchestrationPlan:
        """The plan the orchestrator would run for a workflow (PlanWorkflow: a dry run); `version`
        a registered version of it, empty for the latest."""
        request = O.PlanWorkflowRequest(
            workflow_type=workflow_type, user_context=_journey(user_id, user_context), workflow_version=version
        )
        if options is not None:
            request.execution_options.CopyFrom(options)
        reply: plan_pb2.OrchestrationPlan = await self._call(self.stub.PlanWorkflow, request, retry=True)
        return reply

    # ---- reading ----------------------------------------------------------------------------

    async def get(self, execution_id: str) -> execution_pb2.ExecutionStatus:
        """An execution's status (GetExecution), results included."""
        request = O.GetExecutionRequest(execution_id=execution_id)
        status: execution_pb2.ExecutionStatus = await self._call(self.stub.GetExecution, request, retry=True)
        return status

    async def list_page(
        self,
        *,
        user_id: str = "",
        states: Sequence[execution_pb2.ExecutionState] = (),
        workflow_type: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> orchestrator_pb2.ListExecutionsResponse:
        """One page of executions, newest first (ListExecutions); its next_page_token is empty on the last."""
        request = O.ListExecutionsRequest(
            user_id=user_id, status=states, workflow_type=workflow_type, page_size=page_size, page_token=page_token
        )
        page: orchestrator_pb2.ListExecutionsResponse = await self._call(self.stub.ListExecutions, request, retry=True)
        return page

    async def list(
        self,
        *,
        user_id: str = "",
        states: Sequence[execution_pb2.ExecutionState] = (),
        workflow_type: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[orchestrator_pb2.ExecutionSummary]:
        """Every execution that matches, newest first, fetching page after page as it is iterated."""
        token = ""
        while True:
            page = await self.list_page(
                user_id=user_id, states=states, workflow_type=workflow_type, page_size=page_size, page_token=token
            )
            for summary in page.executions:
                yield summary
            token = page.next_page_token
            if not token:
                return

    async def step_output(self, execution_id: str, step_id: str) -> StepResult:
        """One step's output (GetStepOutput), decoded into the agent's response message.

        Raises:
            NotFound: no such execution or step, or the step has no output (yet).
        """
        request = O.GetStepOutputRequest(execution_id=execution_id, step_id=step_id)
        reply: orchestrator_pb2.StepOutput = await self._call(self.stub.GetStepOutput, request, retry=True)
        status = await self.get(execution_id)
        timing = next((t for t in status.performance_metrics.step_timings if t.step_id == step_id), None)
        return decode_step_output(reply, timing)

    async def health(self) -> orchestrator_pb2.SystemHealth:
        """The system's health (GetSystemHealth): overall, per agent, queue depth."""
        reply: orchestrator_pb2.SystemHealth = await self._call(
            self.stub.GetSystemHealth, O.GetSystemHealthRequest(), retry=True
        )
        return reply

    # ---- watching ---------------------------------------------------------------------------

    def watch(
        self,
        execution_id: str,
        *,
        after_sequence: int = 0,
        view: ViewName | orchestrator_pb2.WatchView = "full",
        heartbeats: bool = False,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> Watch[orchestrator_pb2.ExecutionUpdate]:
        """An execution's updates after `after_sequence`, as an async iterator that resumes a broken
        stream (a server restart, say) where it broke and stops after the terminal update.

        Each update is delivered once, in sequence order. After the loop, the returned Watch's
        ``final`` is the terminal status.

        Args:
            execution_id: the execution.
            after_sequence: the last sequence already seen (0: the whole history).
            view: ``full``, ``events`` or ``states`` (see VIEWS).
            heartbeats: also deliver heartbeats (no event; a status when a wait for agent
                capacity began or ended).
            on_reconnect: called with a line each time a broken stream is resumed.

        Raises (while iterating):
            WatchError: the stream could not be resumed within the client's Reconnect bounds.
            NotFound, PermissionDenied, ...: the server refused the watch.
        """
        return Watch(
            open_stream=self.stub.WatchExecution,
            get_status=lambda request: self.stub.GetExecution(request, timeout=self.timeout),
            execution_id=execution_id,
            after_sequence=after_sequence,
            view=_view(view),
            heartbeats=heartbeats,
            reconnect=self.reconnect,
            on_reconnect=on_reconnect,
            raw=False,
        )

    def watch_raw(
        self,
        execution_id: str,
        *,
        after_sequence: int = 0,
        view: ViewName | orchestrator_pb2.WatchView = "full",
        on_reconnect: Callable[[str], None] | None = None,
    ) -> Watch[bytes]:
        """As `watch`, but each update is delivered as the serialized ExecutionUpdate, undecoded
        (``ExecutionUpdate.FromString`` reads one), heartbeats included.

        For clients whose own parsing would cost (the benchmark): only a stream's last update is
        decoded, to find where to resume and whether it ended; ``final`` holds the terminal
        status once the iterator has stopped.
        """
        return Watch(
            open_stream=self._raw_watch,
            get_status=lambda request: self.stub.GetExecution(request, timeout=self.timeout),
            execution_id=execution_id,
            after_sequence=after_sequence,
            view=_view(view),
            heartbeats=True,
            reconnect=self.reconnect,
            on_reconnect=on_reconnect,
            raw=True,
        )

    async def wait(
        self, execution_id: str, *, after_sequence: int = 0, view: ViewName | orchestrator_pb2.WatchView = "states"
    ) -> execution_pb2.ExecutionStatus:
        """Watches an execution to its end and returns its terminal status (with its results)."""
        watch = self.watch(execution_id, after_sequence=after_sequence, view=view)
        async for _ in watch:
            pass
        assert watch.final is not None  # the watch stops only at the end, or raises
        return watch.final

    async def history(self, execution_id: str, *, until: int = 0) -> builtins.list[execution_pb2.ExecutionEvent]:
        """The execution's recorded events, in order, up to sequence `until` (default: the last
        one recorded now), without waiting for more."""
        limit = until or (await self.get(execution_id)).last_sequence
        events: builtins.list[execution_pb2.ExecutionEvent] = []
        if limit <= 0:
            return events
        updates = self.watch(execution_id, view="events").__aiter__()
        try:
            async for update in updates:
                if update.sequence <= limit:
                    events.append(update.event)
                if update.sequence >= limit:
                    break
        finally:
            await updates.aclose()  # ends the stream now, not when collected
        return events

    async def plan_of(self, execution_id: str) -> plan_pb2.OrchestrationPlan:
        """The plan an execution runs (from its first event, execution_started)."""
        first = await self.history(execution_id, until=1)
        if not first or not first[0].HasField("execution_started"):
            raise NotFound(f"execution {execution_id} has no execution_started event", code=grpc.StatusCode.NOT_FOUND)
        plan: plan_pb2.OrchestrationPlan = first[0].execution_started.plan
        return plan

    # ---- controls -----------------------------------------------------------------------------

    async def signal(
        self,
        execution_id: str,
        signal: Literal["approve", "reject", "input"] | execution_pb2.Signal,
        *,
        step_id: str = "",
        payload: JsonObject | struct_pb2.Struct | None = None,
        reason: str = "",
    ) -> execution_pb2.ExecutionStatus:
        """Gives the waiting step a signal (SignalExecution) and returns the status it leads to.

        Args:
            execution_id: the execution.
            signal: approve, reject or input.
            step_id: the waiting step; empty when only one waits.
            payload: for approve, narrowed lists of the step's data (``{"job_ids": [...]}``); for
                input, fields merged into the step's data.
            reason: why, for the history.
        """
        value = SIGNALS[signal] if isinstance(signal, str) else signal
        request = O.SignalExecutionRequest(
            execution_id=execution_id, step_id=step_id, signal=value, payload=_struct(payload), reason=reason
        )
        status: execution_pb2.ExecutionStatus = await self._call(self.stub.SignalExecution, request, retry=False)
        return status

    async def approve(
        self,
        execution_id: str,
        *,
        step_id: str = "",
        payload: JsonObject | struct_pb2.Struct | None = None,
        reason: str = "",
    ) -> execution_pb2.ExecutionStatus:
        """Approves the waiting step (an approval, or a gate that escalated)."""
        return await self.signal(execution_id, "approve", step_id=step_id, payload=payload, reason=reason)

    async def reject(self, execution_id: str, *, step_id: str = "", reason: str = "") -> execution_pb2.ExecutionStatus:
        """Rejects the waiting step: the execution ends, its completed steps undone first."""
        return await self.signal(execution_id, "reject", step_id=step_id, reason=reason)

    async def pause(self, execution_id: str, *, reason: str = "") -> execution_pb2.ExecutionStatus:
        """Pauses an execution: no new step starts until `resume`."""
        request = O.PauseExecutionRequest(execution_id=execution_id, reason=reason)
        status: execution_pb2.ExecutionStatus = await self._call(self.stub.PauseExecution, request, retry=False)
        return status

    async def resume(self, execution_id: str, *, reason: str = "") -> execution_pb2.ExecutionStatus:
        """Resumes a paused execution."""
        request = O.ResumeExecutionRequest(execution_id=execution_id, reason=reason)
        status: execution_pb2.ExecutionStatus = await self._call(self.stub.ResumeExecution, request, retry=False)
        return status

    async def cancel(self, execution_id: str, *, reason: str = "") -> execution_pb2.ExecutionStatus:
        """Cancels an execution (its completed steps are undone); a finished one is returned unchanged."""
        request = O.CancelExecutionRequest(execution_id=execution_id, reason=reason)
        # Cancelling twice changes nothing more, so a retry after a lost answer is safe.
        status: execution_pb2.ExecutionStatus = await self._call(self.stub.CancelExecution, request, retry=True)
        return status

    async def rerun(
        self, execution_id: str, *, from_step: str = "", reason: str = "", request_id: str = ""
    ) -> execution_pb2.ExecutionStatus:
        """Runs a failed or cancelled execution again, from where it stopped or `from_step`.

        Carries a request_id (a fresh one unless given), so a retry after a lost answer reruns once.
        """
        request = O.RerunExecutionRequest(
            execution_id=execution_id,
            from_step=from_step,
            reason=reason,
            request_id=request_id or f"client-{uuid.uuid4()}",
        )
        status: execution_pb2.ExecutionStatus = await self._call(self.stub.RerunExecution, request, retry=True)
        return status
