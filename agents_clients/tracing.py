"""A span per agent call of a traced execution: the step attempt, a child of the execution's context.

`TracingCaller` wraps the breaker-guarded caller, so a call an open breaker refuses is an attempt
with a span too (status CIRCUIT_OPEN). The span is a CLIENT span whose parent is the execution's
stored ``traceparent`` (`CallTrace.trace_parent`, not the current context: the runner task that
makes the call may belong to a process started long after the submission), and its own context
goes to the agent as ``traceparent`` metadata, so the agent's server span is its child. A call
without `CallTrace` (an untraced execution, a status probe) is passed through untouched.
"""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agents_clients.catalog import AGENT_SERVICES
from server.engine.ports import AgentCall, AgentCaller, AgentCallError, AgentReply

_PROPAGATOR = TraceContextTextMapPropagator()

# The attributes of an attempt's span (the brief's names; `rpc.*` are OpenTelemetry's).
EXECUTION_ID = "baton.execution_id"
STEP_ID = "baton.step_id"
ATTEMPT = "baton.attempt"
AGENT = "baton.agent"
OPERATION = "baton.operation"
IDEMPOTENCY_KEY = "baton.idempotency_key"
CALL_KIND = "baton.call_kind"
"""step, compensation or notice (see CallTrace.kind)."""
OUTCOME = "baton.outcome"
"""OK, or the attempt's error type (a gRPC status code name, CIRCUIT_OPEN ...)."""
GRPC_STATUS_CODE = "rpc.grpc.status_code"
"""The gRPC status code's number, when the attempt got one (0 for OK)."""

_CODES = {code.name: int(code.value[0]) for code in grpc.StatusCode}


class TracingCaller:
    """An AgentCaller that makes a span per call of a traced execution around another caller."""

    def __init__(self, inner: AgentCaller, provider: trace.TracerProvider) -> None:
        """Wraps `inner`, making spans with `provider`'s tracer."""
        self.inner = inner
        self._tracer = provider.get_tracer("baton.agents_clients")

    async def call(self, call: AgentCall) -> AgentReply:
        """Performs the call inside its attempt's span (or plainly when it is not traced)."""
        origin = call.trace
        if origin is None:
            return await self.inner.call(call)
        parent = _PROPAGATOR.extract({"traceparent": origin.trace_parent})
        service = AGENT_SERVICES.get(call.agent)
        rpc_service = service.full_name if service is not None else call.agent
        name = f"{origin.kind} {origin.step_id}"
        attributes: dict[str, str | int] = {
            EXECUTION_ID: origin.execution_id,
            STEP_ID: origin.step_id,
            ATTEMPT: call.attempt,
            AGENT: call.agent,
            OPERATION: call.operation,
            IDEMPOTENCY_KEY: call.idempotency_key,
            CALL_KIND: origin.kind,
            "rpc.system": "grpc",
            "rpc.service": rpc_service,
            "rpc.method": call.operation,
        }
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            traced = dataclasses.replace(call, metadata=(*call.metadata, *carrier.items()))
            try:
                reply = await self.inner.call(traced)
            except asyncio.CancelledError:
                # The process is stopping (the attempt is made again after a restart) or the
                # execution ended without waiting for the reply.
                span.set_attribute(OUTCOME, "CANCELLED")
                raise
            except AgentCallError as error:
                span.set_attribute(OUTCOME, error.error_type)
                code = _CODES.get(error.error_type)
                if code is not None:
                    span.set_attribute(GRPC_STATUS_CODE, code)
                span.set_status(Status(StatusCode.ERROR, f"{error.error_type}: {error.message}"[:512]))
                raise
            span.set_attribute(OUTCOME, "OK")
            span.set_attribute(GRPC_STATUS_CODE, 0)
            return reply
