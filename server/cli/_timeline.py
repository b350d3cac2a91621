"""A text timeline of an execution's steps, from its events: when each ran, retried, waited, was undone.

Each step becomes segments on one time axis that starts with the execution's first event:

- **run** (``█``): an attempt in flight, from step_started to its outcome (a map step: while any
  of its items is in flight); green when it succeeded, red when it failed, blue while running;
- **retry** (``╌``, amber): the backoff between a failed attempt and the next one;
- **wait** (``░``, amber): waiting for a signal (approval, an escalated gate), or delayed;
- **undo** (``▒``, purple): the step's compensation, from its start to its outcome.

A segment still open when the events end runs to `now`. The bar of each step is `width` cells
wide over the whole span; a segment shorter than a cell still gets one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from baton.v1 import execution_pb2
from rich.table import Table
from rich.text import Text

from server.cli._format import format_seconds, when

E = execution_pb2

GLYPHS = {"run": "█", "retry": "╌", "wait": "░", "undo": "▒"}
"""The character each kind of segment is drawn with."""

_STYLES = {"ok": "green", "failed": "red", "open": "blue", "retry": "yellow", "wait": "yellow", "undo": "magenta"}

_PAINT_ORDER = ("retry", "wait", "run", "undo")
"""Later kinds are painted over earlier ones where they share a cell."""


@dataclass
class Segment:
    """One stretch of a step's time."""

    kind: str
    """run, retry, wait or undo."""
    start: datetime
    end: datetime | None = None
    """None while open."""
    outcome: str = "open"
    """ok, failed or open (a run's, an undo's); the kind's own style otherwise."""


@dataclass
class StepLine:
    """What a step did, in time."""

    step_id: str
    segments: list[Segment] = field(default_factory=list)
    attempts: int = 0
    """Attempts started (items' attempts for a map step)."""
    retries: int = 0
    """Attempts that failed and were retried."""
    waits: int = 0
    """Times it waited for a signal or a delay."""
    compensation: str = ""
    """undone, failed or running: what its compensation came to; empty if none ran."""
    end_state: str = ""
    """succeeded, failed, skipped; empty while it has not ended."""
    _in_flight: int = 0

    def _open(self, kind: str) -> Segment | None:
        return next((s for s in reversed(self.segments) if s.kind == kind and s.end is None), None)

    def close(self, kind: str, at: datetime, outcome: str = "") -> None:
        """Ends the open segment of `kind`, if any."""
        segment = self._open(kind)
        if segment is not None:
            segment.end = at
            if outcome:
                segment.outcome = outcome

    def begin(self, kind: str, at: datetime) -> None:
        """Starts a segment of `kind` unless one is open."""
        if self._open(kind) is None:
            self.segments.append(Segment(kind, at))


def _step_of(event: execution_pb2.ExecutionEvent) -> tuple[str, str, Any] | None:
    kind = event.WhichOneof("kind")
    if kind is None:
        return None
    body = getattr(event, kind)
    step_id = getattr(body, "step_id", "")
    return (kind, step_id, body) if step_id else None


def build(events: Iterable[execution_pb2.ExecutionEvent]) -> tuple[list[StepLine], datetime | None]:
    """Folds events into one StepLine per step, in the order steps first did something; and the first event's time."""
    lines: dict[str, StepLine] = {}
    origin: datetime | None = None
    for event in events:
        at = when(event.time)
        origin = origin or at
        found = _step_of(event)
        if found is None:
            continue
        kind, step_id, body = found
        line = lines.setdefault(step_id, StepLine(step_id))
        _apply(line, kind, body, at)
    return list(lines.values()), origin


def _apply(line: StepLine, kind: str, body: Any, at: datetime) -> None:
    if kind in ("step_started", "step_item_started"):
        line.attempts += 1
        line.close("retry", at)
        line.close("wait", at)
        line._in_flight += 1
        line.begin("run", at)
    elif kind in ("step_attempt_failed", "step_item_attempt_failed"):
        line._in_flight = max(line._in_flight - 1, 0)
        if not line._in_flight:
            line.close("run", at, "failed")
        if body.HasField("retry_at"):
            line.retries += 1
            line.begin("retry", at)
    elif kind in ("step_item_succeeded", "step_item_failed"):
        line._in_flight = max(line._in_flight - 1, 0)
        if not line._in_flight:
            line.close("run", at, "ok")
    elif kind in ("step_succeeded", "step_failed", "step_skipped"):
        ok = kind != "step_failed"
        line._in_flight = 0
        line.close("run", at, "ok" if ok else "failed")
        line.close("retry", at)
        line.close("wait", at)
        line.end_state = {"step_succeeded": "succeeded", "step_failed": "failed", "step_skipped": "skipped"}[kind]
    elif kind in ("step_waiting", "step_delayed"):
        line.waits += 1
        line.begin("wait", at)
    elif kind == "signal_received":
        line.close("wait", at)
    elif kind == "compensation_started":
        line.compensation = "running"
        line.begin("undo", at)
    elif kind == "compensation_attempt_failed":
        line.close("undo", at, "failed")
    elif kind == "compensation_succeeded":
        line.close("undo", at, "ok")
        line.compensation = "undone"
    elif kind == "compensation_settled":
        failed = body.state == E.COMPENSATION_STATE_FAILED
        line.close("undo", at, "failed" if failed else "ok")
        if failed:
            line.compensation = "failed"
        elif not line.compensation:
            line.compensation = "not needed"


def _seconds(a: datetime, b: datetime) -> float:
    return max((b - a).total_seconds(), 0.0)


def bar(line: StepLine, origin: datetime, span: float, width: int, now: datetime) -> Text:
    """The step's segments drawn on `width` cells covering `span` seconds from `origin`."""
    cells: list[tuple[str, str]] = [(" ", "")] * width
    scale = width / span if span > 0 else 0.0
    for kind in _PAINT_ORDER:
        for segment in (s for s in line.segments if s.kind == kind):
            first = min(int(_seconds(origin, segment.start) * scale), width - 1)
            last = int(_seconds(origin, segment.end or now) * scale + 0.999)
            style = _STYLES[segment.outcome] if kind in ("run",) else _STYLES[kind]
            if kind == "undo" and segment.outcome == "failed":
                style = "red"
            for cell in range(first, max(last, first + 1)):
                if cell < width:
                    cells[cell] = (GLYPHS[kind], style)
    text = Text()
    for glyph, style in cells:
        text.append(glyph, style=style)
    return text


def _notes(line: StepLine, now: datetime) -> str:
    parts: list[str] = []
    if line.retries:
        parts.append(f"{line.retries} {'retry' if line.retries == 1 else 'retries'}")
    waited = sum(_seconds(s.start, s.end or now) for s in line.segments if s.kind == "wait")
    if line.waits:
        still = any(s.end is None for s in line.segments if s.kind == "wait")
        parts.append(f"waiting {format_seconds(waited)}…" if still else f"waited {format_seconds(waited)}")
    if line.compensation:
        parts.append(f"compensation {line.compensation}")
    return ", ".join(parts)


def timeline_table(events: Iterable[execution_pb2.ExecutionEvent], now: datetime, *, width: int = 40) -> Table | None:
    """The timeline of the steps as a table (step, start, duration, attempts, bar, notes); None without steps.

    Args:
        events: the execution's events, in sequence order.
        now: where open segments end (the time of the status shown).
        width: the bar's width in cells.
    """
    lines, origin = build(events)
    if not lines or origin is None:
        return None
    ends = [s.end or now for line in lines for s in line.segments]
    span = max((_seconds(origin, end) for end in ends), default=0.0)
    table = Table(
        box=None,
        pad_edge=False,
        header_style="bold",
        title=f"timeline (0 → {format_seconds(span)}; █ run ╌ retry ░ wait ▒ undo)",
        title_justify="left",
    )
    for column, justify in (("step", "left"), ("start", "right"), ("took", "right"), ("attempts", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("", no_wrap=True)
    table.add_column("")
    for line in lines:
        if not line.segments:
            continue
        start = min(s.start for s in line.segments)
        end = max(s.end or now for s in line.segments)
        table.add_row(
            line.step_id,
            f"+{format_seconds(_seconds(origin, start))}",
            format_seconds(_seconds(start, end)),
            str(line.attempts or ""),
            bar(line, origin, span, width, now),
            _notes(line, now),
        )
    return table
