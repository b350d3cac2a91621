"""What reaches a runner from outside: agent outcomes and clients' commands, the input of `decide`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baton.v1 import execution_pb2

from server.engine.ports import AgentCallError, AgentReply


class ExecutionStateError(Exception):
    """A command that the execution's current state forbids; the message names the state.

    The API answers it FAILED_PRECONDITION.
    """


class UnknownStepError(ValueError):
    """A command names a step the execution's plan does not have; the message names the field.

    The API answers it INVALID_ARGUMENT.
    """


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one attempt of a step's call (or of its compensation)."""

    step_id: str
    attempt: int
    result: AgentReply | AgentCallError
    compensation: bool = False
    """Whether the attempt was of the step's compensation."""
    item: int = -1
    """The item of a map step the attempt was of, from 0; -1 for the step's own call."""


@dataclass(frozen=True)
class Cancel:
    """A client cancels the execution."""

    reason: str
    actor: execution_pb2.Actor | None = None
    """Who asked; stamped on the event the command records (see `ClientCommand`)."""


@dataclass(frozen=True)
class Pause:
    """A client pauses the execution."""

    reason: str
    actor: execution_pb2.Actor | None = None
    """Who asked; stamped on the event the command records (see `ClientCommand`)."""


@dataclass(frozen=True)
class Resume:
    """A client resumes the paused execution."""

    reason: str
    actor: execution_pb2.Actor | None = None
    """Who asked; stamped on the event the command records (see `ClientCommand`)."""


@dataclass(frozen=True)
class Rerun:
    """A client reruns the failed or cancelled execution (decide.py's `rerun`)."""

    reason: str
    from_step: str = ""
    """The step to rerun from, with every step downstream of it; empty: from where it stopped."""
    request_id: str = ""
    """The client's idempotency key; a rerun that recorded it already is not made again."""
    actor: execution_pb2.Actor | None = None
    """Who asked; stamped on the execution_rerun event."""


@dataclass(frozen=True)
class SignalCommand:
    """A signal for a waiting step."""

    signal: int
    """A baton.v1.Signal value (APPROVE, REJECT or INPUT)."""
    step_id: str = ""
    """The waiting step; empty means the only one that waits."""
    payload: dict[str, Any] = field(default_factory=dict)
    """The signal's payload as JSON."""
    reason: str = ""
    actor: execution_pb2.Actor | None = None
    """Who gave it; stamped on the signal_received event."""


@dataclass(frozen=True)
class InternalFailure:
    """The engine gives up running the execution (its runner kept dying): fail it, with compensation."""

    reason: str


ClientCommand = Cancel | Pause | Resume | Rerun | SignalCommand
"""A command a client's request made: the first event it records carries its actor (the audit
trail); the events that follow from it (compensations, the end) are the orchestrator's own."""

Command = ClientCommand | InternalFailure
"""A client's or the engine's request that the runner checks against the state, then records."""

InboxItem = Outcome | Command
