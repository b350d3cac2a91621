"""Terminal callbacks through the real orchestrator: checked at submission, signed, refused at delivery."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from google.protobuf import json_format

from server.app import RunningServer, start_server
from server.callbacks import CallbackConfig, DeliveryOutcome, verify_signature
from server.config import ConfigError, ServerConfig
from tests.integration.callback_support import Outcomes, Receiver, SilentServer
from tests.integration.support import execute_plan, w_plan, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub
SECRET = b"0123456789abcdef0123456789abcdef"


@asynccontextmanager
async def served(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[RunningServer, Stub, Outcomes]]:
    """An orchestrator whose callbacks may reach 127.0.0.1, signed with SECRET."""
    secret = tmp_path / "callback-secret"
    secret.write_bytes(SECRET + b"\n")
    callbacks = CallbackConfig(**{"allow": ("127.0.0.1",), "secret_file": str(secret), **settings})
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents="embedded", callbacks=callbacks
        )
    )
    outcomes = Outcomes()
    assert running.callbacks is not None
    running.callbacks.add_outcome_listener(outcomes)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            yield running, orchestrator_pb2_grpc.OrchestratorStub(channel), outcomes
    finally:
        await running.stop(grace=0.5)


async def test_a_finished_execution_posts_its_signed_final_status(tmp_path: Path) -> None:
    async with Receiver(200) as receiver, served(tmp_path) as (_, stub, outcomes):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=receiver.url))
        outcome, detail, _ = await outcomes.of(execution.execution_id)
        assert outcome is DeliveryOutcome.DELIVERED, detail
        status = await callback_settled(stub, execution.execution_id)
    [got] = receiver.received
    assert verify_signature(SECRET, got.headers["Baton-Signature"], got.body)
    assert got.headers["Baton-Execution-Id"] == execution.execution_id
    # The body is the status as the execution ended, its callback pending; the status now says
    # the callback was delivered (one event later), and nothing else differs.
    sent = json.loads(got.body)
    now = json_format.MessageToDict(status, preserving_proto_field_name=True)
    assert sent.pop("callback")["state"] == "CALLBACK_STATE_PENDING"
    assert now.pop("callback")["state"] == "CALLBACK_STATE_DELIVERED"
    assert int(sent.pop("last_sequence")) + 1 == int(now.pop("last_sequence"))
    sent.pop("resource_usage"), now.pop("resource_usage")  # total_storage_io counts the event too
    assert sent == now


async def callback_settled(stub: Stub, execution_id: str, within: float = 15.0) -> execution_pb2.ExecutionStatus:
    """The execution's status once its callback is delivered or failed (its outcome event recorded)."""
    request = orchestrator_pb2.GetExecutionRequest(execution_id=execution_id)
    async with asyncio.timeout(within):
        while True:
            status: execution_pb2.ExecutionStatus = await stub.GetExecution(request)
            if status.callback.state in (E.CALLBACK_STATE_DELIVERED, E.CALLBACK_STATE_FAILED):
                return status
            await asyncio.sleep(0.05)


REFUSED_AT_SUBMISSION = [
    "http://127.0.0.1:8080/hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://user:pass@example.com/hook",
    "gopher://example.com/",
    "https://example.com/" + "x" * 3000,
]


async def test_every_spelling_of_an_internal_address_is_refused_at_submission(stub: Stub) -> None:
    for url in REFUSED_AT_SUBMISSION:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=url))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, url
        assert (error.value.details() or "").startswith("callback_url: "), error.value.details()
        assert len(error.value.details() or "") < 300


async def test_a_name_resolving_to_loopback_is_accepted_at_submission_and_refused_at_delivery(
    stub: Stub, orchestrator: RunningServer
) -> None:
    outcomes = Outcomes()
    assert orchestrator.callbacks is not None
    orchestrator.callbacks.add_outcome_listener(outcomes)
    async with Receiver(200) as receiver:
        url = f"http://localhost:{receiver.port}/hook"
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=url))
        outcome, detail, _ = await outcomes.of(execution.execution_id)
    assert outcome is DeliveryOutcome.REFUSED and "loopback" in detail
    assert receiver.received == []


async def test_an_oversized_status_is_posted_abridged_within_the_body_limit(tmp_path: Path) -> None:
    async with Receiver(200) as receiver, served(tmp_path, max_body_bytes=1024) as (_, stub, outcomes):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=receiver.url))
        final = (await watch_all(stub, execution.execution_id))[-1].status
        assert final.ByteSize() > 1024
        outcome, _, _ = await outcomes.of(execution.execution_id)
    assert outcome is DeliveryOutcome.DELIVERED
    [got] = receiver.received
    assert len(got.body) <= 1024 and got.headers["Baton-Status-Abridged"] == "true"
    sent = json.loads(got.body)
    assert sent["execution_id"] == execution.execution_id and sent["status"] == "EXECUTION_STATE_COMPLETED"
    assert set(sent["results"]["omitted_outputs"]) == {"A", "B", "C", "D", "E"}
    assert verify_signature(SECRET, got.headers["Baton-Signature"], got.body)


async def test_stopping_the_server_abandons_a_callback_that_gets_no_answer_within_the_grace(
    tmp_path: Path,
) -> None:
    async with SilentServer() as silent, served(tmp_path, close_grace=0.3, timeout=30.0) as (running, stub, outcomes):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=silent.url))
        await watch_all(stub, execution.execution_id)
        await asyncio.wait_for(silent.connected.wait(), 10)
        start = time.monotonic()
        await running.stop(grace=0.1)
        assert time.monotonic() - start < 3.0
        outcome, _, _ = await outcomes.of(execution.execution_id)
    assert outcome is DeliveryOutcome.ABANDONED


async def test_an_unreadable_secret_file_stops_start_up_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="callback_secret_file"):
        await start_server(
            ServerConfig(
                listen="127.0.0.1:0",
                store_url=f"sqlite:///{tmp_path}/baton.db",
                agents="127.0.0.1:1",
                callbacks=CallbackConfig(secret_file=str(tmp_path / "missing")),
            )
        )
