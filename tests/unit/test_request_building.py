"""Requests built from JSON payloads: the flat fast path and the parser agree."""

from __future__ import annotations

from typing import Any

import pytest
from baton.v1 import automation_pb2, job_discovery_pb2
from google.protobuf import json_format

from agents_clients.grpc_caller import _set_scalars


@pytest.mark.parametrize(
    ("cls", "payload", "fast"),
    [
        (job_discovery_pb2.SearchJobsRequest, {"user_id": "u1", "limit": 5, "remote_only": True}, True),
        (job_discovery_pb2.SearchJobsRequest, {"user_id": "u1", "keywords": ["go"]}, False),
        (job_discovery_pb2.SearchJobsRequest, {"limit": "5"}, False),
        (job_discovery_pb2.SearchJobsRequest, {"limit": True}, False),
        (automation_pb2.SubmitApplicationRequest, {"user_id": "u", "job_ids": ["a", "b"]}, False),
        (automation_pb2.SubmitApplicationRequest, {"nope": 1}, False),
    ],
)
def test_the_fast_path_takes_only_flat_scalars_and_builds_what_the_parser_builds(
    cls: Any, payload: dict[str, Any], fast: bool
) -> None:
    request = cls()
    assert _set_scalars(request, payload) is fast
    if fast:
        assert request == json_format.ParseDict(payload, cls())
    else:
        assert request == cls()  # nothing was set; the parser decides


async def test_a_request_that_cannot_be_built_is_refused_without_a_retry_and_nothing_is_sent() -> None:
    from agents_clients import GrpcAgentCaller
    from server.engine import AgentCall, AgentCallError

    caller = GrpcAgentCaller.single("127.0.0.1:1")  # nothing listens there: a sent call would be UNAVAILABLE
    try:
        call = AgentCall("ui_ux", "Notify", payload={"user_id": object()}, timeout=1.0, idempotency_key="k")
        with pytest.raises(AgentCallError) as refused:
            await caller.call(call)
    finally:
        await caller.close()
    assert refused.value.error_type == "INVALID_ARGUMENT"
    assert not refused.value.retryable
    assert "request of ui_ux.Notify" in refused.value.message
