"""Tracing without I/O: the config's checks, the providers, the stored context, what the runner hands the edge."""

from __future__ import annotations

import io
import json

import pytest
from baton.v1 import execution_pb2 as E
from baton.v1 import journey_pb2
from baton.v1 import plan_pb2 as P
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agents_clients import TracingCaller
from server.engine import Submission, fold, render
from server.engine.ports import AgentCall, CallTrace
from server.telemetry.tracing import (
    ORCHESTRATOR_SERVICE,
    TracingConfig,
    current_trace_parent,
    default_exporter,
    make_tracer_provider,
)
from tests.unit.engine_support import Harness, plan, started_event, step, submit_step
from tests.unit.fakes import FakeCaller, FakeClock, reply, unavailable
from tests.unit.fleet import Fault

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("exporter", "endpoint", "message"),
    [
        ("jaeger", "", "trace-exporter: expected one of none, console, otlp, got 'jaeger'"),
        ("console", "http://127.0.0.1:4317", "otlp-endpoint: needs --trace-exporter otlp (it is console)"),
        ("otlp", "127.0.0.1:4317", "otlp-endpoint: expected http(s)://HOST:PORT, got '127.0.0.1:4317'"),
        ("otlp", "grpc://collector:4317", "otlp-endpoint: expected http(s)://HOST:PORT"),
    ],
)
def test_a_wrong_tracing_setting_is_refused_naming_it(exporter: str, endpoint: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        TracingConfig(exporter=exporter, otlp_endpoint=endpoint)


def test_the_default_is_no_tracing_unless_the_standard_variable_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert default_exporter() == "none"
    assert make_tracer_provider(TracingConfig(), ORCHESTRATOR_SERVICE) is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "Console")
    assert default_exporter() == "console"


def test_the_console_exporter_writes_one_json_line_per_span_named_by_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    out = io.StringIO()
    provider = make_tracer_provider(TracingConfig(exporter="console"), ORCHESTRATOR_SERVICE, out=out)
    assert provider is not None
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
        pass
    provider.shutdown()
    lines = out.getvalue().splitlines()
    spans = [json.loads(line) for line in lines]
    assert [s["name"] for s in spans] == ["inner", "outer"]
    assert spans[0]["parent_id"] == spans[1]["context"]["span_id"]
    assert {s["resource"]["attributes"]["service.name"] for s in spans} == {"baton-orchestrator"}


def test_otel_service_name_overrides_the_default_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "baton-eu-1")
    provider = make_tracer_provider(TracingConfig(exporter="console"), ORCHESTRATOR_SERVICE, out=io.StringIO())
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "baton-eu-1"
    provider.shutdown()


def test_the_current_trace_parent_is_the_current_spans_and_empty_outside_any_span() -> None:
    assert current_trace_parent() == ""
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("rpc") as span:
        context = span.get_span_context()
        flags = int(context.trace_flags)
        assert current_trace_parent() == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"


@pytest.mark.parametrize(
    ("trace_parent", "trace_id"),
    [
        (TRACE_PARENT, TRACE_ID),
        ("", ""),
        ("00-4bf92f3577b34da6-00f067aa0ba902b7-01", ""),  # a short trace id
        (f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01", ""),  # not lowercase hex
        (f"00-{TRACE_ID}", ""),  # truncated
        (f"00-{TRACE_ID}-00f067aa0ba902b7-03", TRACE_ID),  # sampled, random trace id
        (f"00-{TRACE_ID}-00f067aa0ba902b7-00", ""),  # not sampled: no span of it is recorded
        (f"00-{TRACE_ID}-00f067aa0ba902b7-zz", ""),
    ],
)
def test_the_status_shows_the_trace_id_of_the_stored_trace_parent(trace_parent: str, trace_id: str) -> None:
    event = started_event()
    event.execution_started.trace_parent = trace_parent
    state = fold("ex", [event])
    assert state.trace_id == trace_id
    assert render(state).trace_id == trace_id


async def _submit(h: Harness, *steps: object, trace_parent: str) -> str:
    await h.engine.submit(
        Submission(
            execution_id="ex-1",
            plan=plan(*steps),  # type: ignore[arg-type]
            user_context=journey_pb2.UserJourney(user_id="u1"),
            trace_parent=trace_parent,
        )
    )
    return "ex-1"


async def test_the_runner_hands_every_attempt_of_a_traced_execution_its_stored_context() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", unavailable())
    ex = await _submit(h, step("A", retries=1), trace_parent=TRACE_PARENT)
    assert h.store.events[ex][0].execution_started.trace_parent == TRACE_PARENT
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    traces = [(c.call.attempt, c.call.trace) for c in h.caller.calls]
    assert traces == [(n, CallTrace(ex, "A", "step", TRACE_PARENT)) for n in (1, 2)]


async def test_a_recovered_execution_keeps_its_context_and_an_untraced_one_gets_none() -> None:
    h = Harness(latency=5.0)
    traced = await _submit(h, step("A"), trace_parent=TRACE_PARENT)
    await h.settle()
    await h.restart()  # the attempt in flight is made again by a new engine, from the store
    await h.run(traced)
    assert [c.call.trace for c in h.caller.calls] == [CallTrace(traced, "A", "step", TRACE_PARENT)] * 2

    untraced = Harness()
    ex = await _submit(untraced, step("A"), trace_parent="")
    await untraced.run(ex)
    assert [c.call.trace for c in untraced.caller.calls] == [None]


async def test_a_compensation_is_handed_the_executions_context_as_a_compensation() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
    ex = await _submit(
        h, submit_step(), step("notify", "submit", agent="ui_ux", operation="Notify"), trace_parent=TRACE_PARENT
    )
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert [(c.operation, c.trace) for c in fleet.calls] == [
        ("SubmitApplication", CallTrace(ex, "submit", "step", TRACE_PARENT)),
        ("Notify", CallTrace(ex, "notify", "step", TRACE_PARENT)),
        ("WithdrawApplication", CallTrace(ex, "submit", "compensation", TRACE_PARENT)),
    ]


async def test_an_escalations_notice_is_handed_the_executions_context_as_a_notice() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", reply({}, accuracy=40.0))
    escalating = plan(step("A"))
    gate = escalating.quality_gates.add(gate_id="g", checkpoint="A", action_on_failure=P.GATE_ACTION_ESCALATE)
    gate.criteria.add(metric="accuracy", operator=P.COMPARISON_OPERATOR_GTE, value=80.0, weight=1.0)
    await h.engine.submit(
        Submission(
            execution_id="ex-1",
            plan=escalating,
            user_context=journey_pb2.UserJourney(user_id="u1"),
            trace_parent=TRACE_PARENT,
        )
    )
    await h.settle()
    (notice,) = h.caller.calls_to("ui_ux", "Notify")
    assert notice.call.trace == CallTrace("ex-1", "A", "notice", TRACE_PARENT)


async def test_the_tracing_caller_passes_an_untraced_call_through_untouched() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    inner = FakeCaller(FakeClock())
    call = AgentCall("analytics", "RecordEvents", payload={}, timeout=1.0, idempotency_key="k")
    await TracingCaller(inner, provider).call(call)
    assert inner.calls[0].call is call
    assert exporter.get_finished_spans() == ()


async def test_the_tracing_caller_sends_its_span_as_the_agents_parent() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    inner = FakeCaller(FakeClock())
    call = AgentCall(
        "analytics",
        "RecordEvents",
        payload={},
        timeout=1.0,
        idempotency_key="ex/A",
        metadata=(("x-other", "kept"),),
        trace=CallTrace("ex", "A", "step", TRACE_PARENT),
    )
    await TracingCaller(inner, provider).call(call)
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.CLIENT
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    sent = dict(inner.calls[0].call.metadata)
    assert sent == {"x-other": "kept", "traceparent": f"00-{TRACE_ID}-{span.context.span_id:016x}-01"}


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["serve", "--trace-exporter", "jaeger"], "", "error: --trace-exporter: expected one of none, console, otlp"),
        (
            ["agents", "serve", "--otlp-endpoint", "http://127.0.0.1:4317"],
            "",
            "error: --otlp-endpoint: needs --trace-exporter otlp (it is none)",
        ),
        (["run", "w", "--trace-exporter", "otlp", "--otlp-endpoint", "collector"], "", "error: --otlp-endpoint:"),
        (["run", "w"], "zipkin", "got 'zipkin' (from $OTEL_TRACES_EXPORTER)"),
    ],
)
def test_a_wrong_tracing_option_is_bad_usage_before_anything_starts(
    argv: list[str], env: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    if env:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", env)
    else:
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
