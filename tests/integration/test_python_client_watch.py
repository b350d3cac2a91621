"""The client's watch and retries against a scripted Orchestrator on loopback (a real grpc.aio server
that breaks streams, repeats updates and sends heartbeats on cue): what a resuming client must
survive, made to happen exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from server.api.errors import retry_details
from server.client import BatonClient, Reconnect, ResourceExhausted, Unavailable, WatchError

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
pytestmark = pytest.mark.timeout(30)

FAST = Reconnect(attempts=3, initial_backoff=0.01, max_backoff=0.02)


def _update(sequence: int, state: int = E.EXECUTION_STATE_RUNNING) -> orchestrator_pb2.ExecutionUpdate:
    update = O.ExecutionUpdate(sequence=sequence)
    update.event.sequence = sequence
    update.status.execution_id = "x"
    update.status.status = state  # type: ignore[assignment]
    update.status.last_sequence = sequence
    return update


def _heartbeat(sequence: int) -> orchestrator_pb2.ExecutionUpdate:
    return O.ExecutionUpdate(sequence=sequence, heartbeat=True)


@dataclass
class Stream:
    """What one WatchExecution call sends, and how it ends."""

    updates: list[orchestrator_pb2.ExecutionUpdate]
    end: grpc.StatusCode | None = None
    """None: a clean end (OK); else the stream is aborted with this code."""


@dataclass
class Scripted(orchestrator_pb2_grpc.OrchestratorServicer):
    streams: list[Stream] = field(default_factory=list)
    status: execution_pb2.ExecutionStatus = field(default_factory=execution_pb2.ExecutionStatus)
    submits: list[orchestrator_pb2.ExecuteWorkflowRequest] = field(default_factory=list)
    submit_errors: list[grpc.StatusCode] = field(default_factory=list)
    watched_after: list[int] = field(default_factory=list)

    async def WatchExecution(
        self, request: orchestrator_pb2.WatchExecutionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orchestrator_pb2.ExecutionUpdate]:
        self.watched_after.append(request.after_sequence)
        stream = self.streams.pop(0) if self.streams else Stream([], grpc.StatusCode.UNAVAILABLE)
        for update in stream.updates:
            yield update
        if stream.end is not None:
            await context.abort(stream.end, "scripted end")

    async def GetExecution(
        self, request: orchestrator_pb2.GetExecutionRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ExecutionStatus:
        return self.status

    async def ExecuteWorkflow(
        self, request: orchestrator_pb2.ExecuteWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Execution:
        self.submits.append(request)
        if self.submit_errors:
            code = self.submit_errors.pop(0)
            trailers = retry_details(code, "queue full", 1.5) if code == grpc.StatusCode.RESOURCE_EXHAUSTED else ()
            context.set_trailing_metadata(trailers)
            await context.abort(code, "scripted failure")
        return O.Execution(execution_id="x", created=len(self.submits) == 1)


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    servicer = Scripted()
    server = grpc.aio.server()
    orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def test_a_broken_stream_resumes_after_the_last_sequence_and_repeats_are_dropped(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    servicer.streams = [
        Stream([_update(1), _update(2)], grpc.StatusCode.UNAVAILABLE),
        # A server that repeats what was delivered, and a heartbeat from before any event (sequence 0).
        Stream([_heartbeat(0), _update(1), _update(2), _update(3, E.EXECUTION_STATE_COMPLETED)]),
    ]
    notes: list[str] = []
    async with BatonClient(target, reconnect=FAST) as client:
        watch = client.watch("x", on_reconnect=notes.append)
        delivered = [u.sequence async for u in watch]
    assert delivered == [1, 2, 3]
    assert servicer.watched_after == [0, 2]
    assert notes == ["stream broken (UNAVAILABLE); resuming after #2"]
    assert watch.final is not None and watch.final.status == E.EXECUTION_STATE_COMPLETED
    assert watch.reconnects == 1


async def test_heartbeats_are_delivered_only_when_asked_for_and_never_move_the_resume_point_back(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    servicer.streams = [
        Stream([_update(1), _heartbeat(0)], grpc.StatusCode.UNAVAILABLE),
        Stream([_update(2, E.EXECUTION_STATE_FAILED)]),
    ]
    async with BatonClient(target, reconnect=FAST) as client:
        got = [(u.sequence, u.heartbeat) async for u in client.watch("x", heartbeats=True)]
    assert got == [(1, False), (0, True), (2, False)]
    assert servicer.watched_after == [0, 1]


async def test_a_stream_that_ends_cleanly_before_the_end_is_resumed_once_the_status_says_more_is_coming(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    servicer.status = execution_pb2.ExecutionStatus(execution_id="x", status=E.EXECUTION_STATE_RUNNING, last_sequence=2)
    servicer.streams = [Stream([_update(1), _update(2)]), Stream([_update(3, E.EXECUTION_STATE_CANCELLED)])]
    async with BatonClient(target, reconnect=FAST) as client:
        watch = client.watch("x")
        assert [u.sequence async for u in watch] == [1, 2, 3]
    assert servicer.watched_after == [0, 2]
    assert watch.final is not None and watch.final.status == E.EXECUTION_STATE_CANCELLED


async def test_a_watch_after_the_end_stops_with_the_status_from_get_execution(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    servicer.status = execution_pb2.ExecutionStatus(
        execution_id="x", status=E.EXECUTION_STATE_COMPLETED, last_sequence=7
    )
    servicer.streams = [Stream([])]
    async with BatonClient(target, reconnect=FAST) as client:
        assert (await client.wait("x", after_sequence=7)).last_sequence == 7
    assert servicer.watched_after == [7]


async def test_a_watch_that_cannot_be_resumed_raises_watch_error_naming_the_last_sequence(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    servicer.streams = [Stream([_update(1), _update(2)], grpc.StatusCode.UNAVAILABLE)]  # then UNAVAILABLE forever
    delivered: list[int] = []
    async with BatonClient(target, reconnect=FAST) as client:
        with pytest.raises(WatchError) as raised:
            async for update in client.watch("x"):
                delivered.append(update.sequence)
    assert delivered == [1, 2]
    assert raised.value.last_sequence == 2
    assert raised.value.execution_id == "x"
    assert "last sequence delivered is 2" in str(raised.value)
    assert isinstance(raised.value.__cause__, Unavailable)
    assert servicer.watched_after == [0, 2, 2, 2]  # the first stream and FAST's 3 attempts


async def test_a_raw_watch_decodes_only_to_resume_and_ends_with_the_final(
    scripted: tuple[Scripted, str],
) -> None:
    servicer, target = scripted
    servicer.streams = [
        Stream([_update(1), _update(2)], grpc.StatusCode.UNAVAILABLE),
        # The stream's last message, the only one decoded, is a heartbeat from before any event.
        Stream([_heartbeat(0)], grpc.StatusCode.UNAVAILABLE),
        Stream([_update(3, E.EXECUTION_STATE_COMPLETED)]),
    ]
    async with BatonClient(target, reconnect=FAST) as client:
        watch = client.watch_raw("x")
        raw = [item async for item in watch]
    assert [O.ExecutionUpdate.FromString(item).sequence for item in raw] == [1, 2, 0, 3]
    assert servicer.watched_after == [0, 2, 2]
    assert watch.final is not None and watch.final.last_sequence == 3


async def test_submit_retries_while_unavailable_with_one_request_id(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    servicer.submit_errors = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
    async with BatonClient(target) as client:
        execution = await client.submit("w", user_id="u")
    assert execution.execution_id == "x"
    ids = {request.request_id for request in servicer.submits}
    assert len(servicer.submits) == 3 and len(ids) == 1 and ids != {""}


async def test_a_submit_without_request_id_is_not_retried(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    servicer.submit_errors = [grpc.StatusCode.UNAVAILABLE]
    async with BatonClient(target) as client:
        with pytest.raises(Unavailable):
            await client.submit("w", user_id="u", idempotent=False)
    assert len(servicer.submits) == 1


async def test_resource_exhausted_carries_the_servers_retry_hint(scripted: tuple[Scripted, str]) -> None:
    servicer, target = scripted
    servicer.submit_errors = [grpc.StatusCode.RESOURCE_EXHAUSTED]
    async with BatonClient(target) as client:
        with pytest.raises(ResourceExhausted) as raised:
            await client.submit("w", user_id="u")
    assert raised.value.retry_after == 1.5
    assert raised.value.details == "scripted failure"
    assert len(servicer.submits) == 1  # not retried
