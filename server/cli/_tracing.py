"""The CLI's tracing options: `--trace-exporter`/`--otlp-endpoint`, and `baton run`'s client span."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from server.cli._common import UsageError

if TYPE_CHECKING:
    from server.telemetry.tracing import TracingConfig

CLI_SERVICE = "baton-cli"
"""The ``service.name`` of `baton run`'s spans."""


def tracing_config(args: argparse.Namespace) -> TracingConfig:
    """The TracingConfig of --trace-exporter (default $OTEL_TRACES_EXPORTER) and --otlp-endpoint.

    Raises:
        UsageError: a value is wrong (the message names the option or the variable).
    """
    from server.telemetry.tracing import EXPORTER_ENV, TracingConfig, default_exporter

    exporter = args.trace_exporter
    try:
        return TracingConfig(exporter=exporter or default_exporter(), otlp_endpoint=args.otlp_endpoint)
    except ValueError as exc:
        source = "" if exporter else f" (from ${EXPORTER_ENV})"
        raise UsageError(f"--{exc}{source}") from None


@contextlib.asynccontextmanager
async def client_span(config: TracingConfig, name: str) -> AsyncIterator[Sequence[Any]]:
    """Runs the block in a span `name` (the root of the trace of what it submits) when tracing.

    Yields:
        The client interceptors to build the channel with (none when not tracing): each RPC is
        a client span, the child of `name`, and carries its ``traceparent`` to the server.
    """
    from server.telemetry.tracing import make_tracer_provider

    # stderr: the run's live display owns stdout.
    provider = make_tracer_provider(config, CLI_SERVICE, out=sys.stderr)
    if provider is None:
        yield ()
        return
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    try:
        with provider.get_tracer("baton.cli").start_as_current_span(name):
            yield aio_client_interceptors(tracer_provider=provider)  # type: ignore[no-untyped-call]
    finally:
        provider.shutdown()
