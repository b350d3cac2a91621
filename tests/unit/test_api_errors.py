"""The one table mapping domain errors to gRPC status codes."""

from __future__ import annotations

import grpc

from server.api.errors import status_of
from server.engine import ExecutionStateError
from server.store.base import ExecutionNotFoundError


def test_a_command_the_state_forbids_is_a_failed_precondition_with_the_engines_message() -> None:
    error = ExecutionStateError("execution e1 is completed")
    assert status_of(error) == (grpc.StatusCode.FAILED_PRECONDITION, "execution e1 is completed")


def test_an_unknown_execution_is_not_found_naming_the_field() -> None:
    assert status_of(ExecutionNotFoundError("e1")) == (grpc.StatusCode.NOT_FOUND, "execution_id: no execution 'e1'")


def test_an_unexpected_error_is_not_in_the_table() -> None:
    assert status_of(RuntimeError("boom")) is None
