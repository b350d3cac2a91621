"""The JSON log filter's rule: inside an execution's work its own trace, elsewhere the current span's."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from server.engine.task_context import EXECUTION_ID, TRACE_ID
from server.telemetry.logs import make_handler

EXECUTION_TRACE = "0af7651916cd43dd8448eb211c80319c"


def _logged(write: Any) -> dict[str, Any]:
    stream = io.StringIO()
    logger = logging.getLogger("baton.test.log_context")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = make_handler("json", stream)
    logger.addHandler(handler)
    try:
        # A fresh context, as a task has: what is set here does not leak into other tests.
        contextvars.copy_context().run(write, logger)
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_an_rpcs_line_carries_the_current_spans_trace_and_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    seen: dict[str, str] = {}

    def write(logger: logging.Logger) -> None:
        with tracer.start_as_current_span("rpc") as span:
            seen["trace"] = format(span.get_span_context().trace_id, "032x")
            seen["span"] = format(span.get_span_context().span_id, "016x")
            logger.info("handled")

    line = _logged(write)
    assert (line["trace_id"], line["span_id"]) == (seen["trace"], seen["span"])
    assert "execution_id" not in line


def test_inside_an_executions_work_its_own_trace_wins_over_the_span_of_the_rpc_that_woke_it() -> None:
    tracer = TracerProvider().get_tracer("test")

    def write(logger: logging.Logger) -> None:
        # A cancel's RPC span is current in the task that started the runner.
        with tracer.start_as_current_span("cancel rpc"):
            EXECUTION_ID.set("exec-1")
            TRACE_ID.set(EXECUTION_TRACE)
            logger.info("runner line")

    line = _logged(write)
    assert line["execution_id"] == "exec-1"
    assert line["trace_id"] == EXECUTION_TRACE
    assert "span_id" not in line  # that span belongs to another trace


def test_an_untraced_executions_line_has_its_id_and_no_trace() -> None:
    def write(logger: logging.Logger) -> None:
        EXECUTION_ID.set("exec-2")
        logger.info("runner line")

    line = _logged(write)
    assert line["execution_id"] == "exec-2"
    assert "trace_id" not in line
