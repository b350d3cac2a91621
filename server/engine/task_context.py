"""Which execution the current task works for: set by the runner, read by the log formatter.

The runner sets both variables at the start of its task; the tasks it starts (the agent calls)
inherit them, as asyncio copies the context into every task it creates. Nothing in the engine
reads them: they exist so that a log line written anywhere during an execution's work (the
engine, the agents' clients, a terminal listener) can say which execution, and which trace, it
belongs to (server/telemetry/logs.py), without the engine knowing how logs are written.
"""

from __future__ import annotations

from contextvars import ContextVar

EXECUTION_ID: ContextVar[str] = ContextVar("baton_execution_id", default="")
"""The execution whose runner (or one of whose calls) runs in this task; empty elsewhere."""
TRACE_ID: ContextVar[str] = ContextVar("baton_trace_id", default="")
"""That execution's trace id (32 hex digits); empty when it is not traced or not sampled."""
