"""The CLI's control commands: approve, reject, signal, pause, resume, cancel, rerun; each prints the new state."""

from __future__ import annotations

import argparse
import json
from typing import Any

from baton.v1 import execution_pb2, orchestrator_pb2
from google.protobuf import struct_pb2

from server.cli._common import EXIT_OK, UsageError, ask
from server.cli._format import TERMINAL, execution_state
from server.cli._waiting import waiting_summary

E = execution_pb2

SIGNALS = {"approve": E.SIGNAL_APPROVE, "reject": E.SIGNAL_REJECT, "input": E.SIGNAL_INPUT}
"""`baton signal`'s SIGNAL argument → the Signal it sends."""


def parse_payload(text: str | None) -> struct_pb2.Struct:
    """Parses --payload: a JSON object, such as {"job_ids": ["job-0068"]}.

    Args:
        text: the option's value, or None when it was not given (an empty payload).

    Raises:
        UsageError: the text is not JSON, or not a JSON object.
    """
    payload = struct_pb2.Struct()
    if text is None:
        return payload
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--payload: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(
            f'--payload: expected a JSON object such as {{"job_ids": ["job-1"]}}, got {type(data).__name__}'
        )
    try:
        payload.update(data)
    except (ValueError, TypeError) as exc:
        # Struct holds JSON only; json.loads can still produce what it cannot (NaN, huge integers).
        raise UsageError(f"--payload: {exc}") from None
    return payload


def result_line(verb: str, status: execution_pb2.ExecutionStatus) -> str:
    """One line saying what was done and the state the execution is in now.

    For example `approved: execution 6a32… running` or `paused: execution 6a32… paused`; a step
    still waiting, or the reason a finished execution ended, follows.
    """
    state = execution_state(status.status)
    line = f"{verb}: execution {status.execution_id} {state}"
    if status.waiting and status.status not in TERMINAL:
        waiting = ", ".join(w.step_id for w in status.waiting)
        line += f" ({waiting_summary(status.waiting)}: {waiting})"
    elif status.status in TERMINAL and status.failure_reason:
        # A cancel's reason starts with "cancelled: ", which the line has just said.
        reason = status.failure_reason.removeprefix(f"{state}: ")
        if reason != state:
            line += f" ({reason})"
    return line


def _signal(args: argparse.Namespace, signal: int, verb: str, payload: struct_pb2.Struct) -> int:
    status: execution_pb2.ExecutionStatus = ask(
        args,
        lambda client: client.signal(
            args.execution_id,
            signal,  # type: ignore[arg-type]
            step_id=args.step or "",
            payload=payload,
            reason=args.reason or "",
        ),
    )
    print(result_line(verb, status))
    return EXIT_OK


def cmd_approve(args: argparse.Namespace) -> int:
    """`baton approve`: approves the waiting step (narrowed by --payload)."""
    return _signal(args, E.SIGNAL_APPROVE, "approved", parse_payload(args.payload))


def cmd_reject(args: argparse.Namespace) -> int:
    """`baton reject`: rejects the waiting step; the execution ends and its completed steps are undone."""
    return _signal(args, E.SIGNAL_REJECT, "rejected", struct_pb2.Struct())


def cmd_signal(args: argparse.Namespace) -> int:
    """`baton signal`: gives the waiting step any signal (approve, reject or input) with a payload."""
    verbs = {"approve": "approved", "reject": "rejected", "input": "input given"}
    return _signal(args, SIGNALS[args.signal], verbs[args.signal], parse_payload(args.payload))


def cmd_pause(args: argparse.Namespace) -> int:
    """`baton pause`: no new step starts until `baton resume`."""
    status: execution_pb2.ExecutionStatus = ask(
        args, lambda client: client.pause(args.execution_id, reason=args.reason or "")
    )
    print(result_line("paused", status))
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    """`baton resume`: a paused execution goes on."""
    status: execution_pb2.ExecutionStatus = ask(
        args, lambda client: client.resume(args.execution_id, reason=args.reason or "")
    )
    print(result_line("resumed", status))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    """`baton cancel`: the execution ends CANCELLED once its completed steps are undone."""
    status: execution_pb2.ExecutionStatus = ask(
        args, lambda client: client.cancel(args.execution_id, reason=args.reason or "")
    )
    ended = status.status in (E.EXECUTION_STATE_COMPLETED, E.EXECUTION_STATE_FAILED)
    print(result_line("not cancelled, it had already ended" if ended else "cancelled", status))
    return EXIT_OK


def rerun_request(args: argparse.Namespace) -> orchestrator_pb2.RerunExecutionRequest:
    """The RerunExecutionRequest of `baton rerun`'s arguments."""
    return orchestrator_pb2.RerunExecutionRequest(
        execution_id=args.execution_id, from_step=args.from_step or "", reason=args.reason or ""
    )


def rerun_line(status: execution_pb2.ExecutionStatus) -> str:
    """`rerun: execution 6a32… running (run 2)`."""
    return f"{result_line('rerun', status)} (run {status.run})"
