"""Traces: the tracer provider `--trace-exporter` asks for, the gRPC server spans, the stored context.

Rules:
1. One execution is one trace. ExecuteWorkflow's server span (a child of the client's span when
   the client sent a ``traceparent``) is stored, as a ``traceparent``, in the execution_started
   event; every span of the execution (one per step attempt, made by
   `agents_clients.TracingCaller`) is a child of that stored context, so attempts made after a
   restart, by another process, join the same trace.
2. Nothing is global: the provider is made here and passed explicitly (to the server's
   interceptor, the agent caller, the embedded fleet), never installed with
   ``trace.set_tracer_provider``, so several servers in one process (the tests) each keep their
   own, and the global instrumentors' monkeypatching of ``grpc.aio`` is never needed.
3. Off by default (``--trace-exporter none``): no provider, no interceptor, no span, an empty
   ``trace_parent``, and the SDK is not even imported (W0 costs the same with and without this
   module: bench/run.py, same run).
4. The sampling decision is the submission's: an execution sampled out stores its context all
   the same (flag 01 off), so its attempts and the agents' spans are dropped too, and its status
   shows no trace id.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING
from urllib.parse import urlparse

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    import grpc
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

EXPORTERS = ("none", "console", "otlp")
"""The values of ``--trace-exporter``."""
ORCHESTRATOR_SERVICE = "baton-orchestrator"
"""The ``service.name`` of the orchestrator's spans (OTEL_SERVICE_NAME overrides it)."""
AGENTS_SERVICE = "baton-agents"
"""The ``service.name`` of the reference agents' spans (OTEL_SERVICE_NAME overrides it)."""
_PROPAGATOR = TraceContextTextMapPropagator()
EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
"""The standard variable read as the default of ``--trace-exporter``."""


@dataclass(frozen=True)
class TracingConfig:
    """Where spans go; validated on construction (ValueError naming the setting)."""

    exporter: str = "none"
    """none (the default: no spans at all), console (one JSON line per span on stdout) or otlp
    (batched to an OpenTelemetry collector over gRPC)."""
    otlp_endpoint: str = ""
    """With otlp: the collector's URL (``http://HOST:4317``); empty means the standard variables
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4317."""

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise ValueError(f"trace-exporter: expected one of {', '.join(EXPORTERS)}, got {self.exporter!r}")
        if self.otlp_endpoint:
            if self.exporter != "otlp":
                raise ValueError(f"otlp-endpoint: needs --trace-exporter otlp (it is {self.exporter})")
            url = urlparse(self.otlp_endpoint)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"otlp-endpoint: expected http(s)://HOST:PORT, got {self.otlp_endpoint!r}")

    @property
    def enabled(self) -> bool:
        """Whether spans are made at all."""
        return self.exporter != "none"


def default_exporter() -> str:
    """``--trace-exporter``'s default: $OTEL_TRACES_EXPORTER when set, else none."""
    return os.environ.get(EXPORTER_ENV, "").strip().lower() or "none"


def _one_line(span: ReadableSpan) -> str:
    # One span per line: readable with grep, and with `jq -c` per line.
    line: str = span.to_json(indent=None)
    return line + "\n"


def make_tracer_provider(config: TracingConfig, service: str, *, out: IO[str] | None = None) -> TracerProvider | None:
    """Returns the tracer provider the config asks for (None for none); the caller shuts it down.

    Args:
        config: the exporter.
        service: the default ``service.name`` (ORCHESTRATOR_SERVICE or AGENTS_SERVICE).
        out: where the console exporter writes (default stdout).
    """
    if not config.enabled:
        return None
    # Imported here: the SDK and the exporters cost ~100 ms to import, paid only when tracing.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service})
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER, else always on
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # At once, span by span: the console is for watching one execution as it runs.
        provider.add_span_processor(
            SimpleSpanProcessor(ConsoleSpanExporter(out=out or sys.stdout, formatter=_one_line))
        )
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # Batched, off the event loop (the processor's own thread): a slow collector delays no call.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint or None)))
    return provider


def server_interceptor(provider: trace.TracerProvider) -> grpc.aio.ServerInterceptor:
    """The interceptor that makes a SERVER span per RPC (a child of the caller's ``traceparent``)
    with `provider`, leaving out health checks and reflection (most RPCs, and no execution's)."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    traced: Callable[[object], bool] = filters.negate(
        filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
    )
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=traced
    )
    return interceptor


def current_trace_parent() -> str:
    """The ``traceparent`` of the current span (the RPC's server span); empty when none is valid."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)  # nothing when the current span is not valid
    return carrier.get("traceparent", "")
