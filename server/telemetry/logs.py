"""Logs on stderr as text or as JSON lines carrying the execution and trace ids (``--log-format``).

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, then, when
known, ``execution_id`` (the execution whose work wrote it: server.engine.task_context, set by its
runner and inherited by its calls), ``trace_id`` and ``span_id``, and ``exception`` (the
traceback). The trace is the execution's own inside its work (the calls' spans belong to it),
elsewhere the current OpenTelemetry span's (a traced RPC's); none when tracing is off.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO

from opentelemetry import trace

from server.engine.task_context import EXECUTION_ID, TRACE_ID

LOG_FORMATS = ("text", "json")
"""The values of ``--log-format``."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""The text format's line (what `baton serve` always wrote)."""


class ContextFilter(logging.Filter):
    """Adds ``execution_id``, ``trace_id`` and ``span_id`` (empty when unknown) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotates the record from the current context; lets every record through."""
        execution_id = EXECUTION_ID.get()
        span = trace.get_current_span().get_span_context()
        span_trace = format(span.trace_id, "032x") if span.is_valid else ""
        # Inside an execution's work its own trace counts, not that of the RPC whose task
        # started the runner (a cancel's, say); the calls' spans are children of its own.
        trace_id = TRACE_ID.get() if execution_id else span_trace
        record.execution_id = execution_id
        record.trace_id = trace_id
        record.span_id = format(span.span_id, "016x") if span.is_valid and span_trace == trace_id else ""
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        """Returns the record's JSON line (without the newline)."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("execution_id", "trace_id", "span_id"):
            value = getattr(record, key, "")
            if value:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def make_handler(log_format: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Returns a handler writing to `stream` (default stderr) as text or JSON lines.

    Raises:
        ValueError: an unknown format.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log-format: expected one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        # On the handler, not a logger: a handler's filters see every record it writes, whichever
        # logger made it.
        handler.addFilter(ContextFilter())
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(level: str, log_format: str = "text") -> None:
    """Sends the records at `level` and above to stderr as text or JSON lines (as
    ``logging.basicConfig``: nothing changes when the root logger already has a handler).

    Raises:
        ValueError: an unknown format.
    """
    logging.basicConfig(level=level.upper(), handlers=[make_handler(log_format)])
