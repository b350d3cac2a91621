"""kill -9 of `baton serve` between an execution's end and its callback's delivery: after a
restart on the same store the receiver still gets the final status, and the history records one
delivery."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from server.callbacks import delivery_id_of
from tests.conftest import free_port, serve_orchestrator
from tests.integration.callback_support import Receiver
from tests.integration.support import execute_plan, w_plan, watch_all

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub

pytestmark = pytest.mark.timeout(90)


async def test_a_callback_survives_kill_9_between_the_end_and_the_post(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    store = tmp_path / "baton.db"
    port = free_port()
    flags = ("--callback-allow", "127.0.0.1", "--callback-backoff", "0.2")
    blocked = asyncio.Event()
    never = asyncio.Event()

    async def hold(request: web.Request) -> web.StreamResponse:
        # The first POST gets no answer: the process is killed while it waits for one, so the
        # terminal event is committed and the callback not yet delivered.
        blocked.set()
        await never.wait()
        return web.Response(status=500)

    async with Receiver(hold, 200) as receiver:
        proc, target = serve_orchestrator(processes, store, "embedded", *flags, port=port)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = Stub(channel)
            execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=receiver.url), timeout=10)
            execution_id = execution.execution_id
            updates = await watch_all(stub, execution_id)
            assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
            await asyncio.wait_for(blocked.wait(), 15)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert len(receiver.received) == 1

        _, target = serve_orchestrator(processes, store, "embedded", *flags, port=port)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = Stub(channel)
            async with asyncio.timeout(30):
                while True:
                    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id), timeout=10)
                    if status.callback.state != E.CALLBACK_STATE_PENDING:
                        break
                    await asyncio.sleep(0.1)
            history = await watch_all(stub, execution_id)
            await asyncio.sleep(0.5)  # nothing more arrives

    assert status.callback.state == E.CALLBACK_STATE_DELIVERED, status.callback.detail
    # The receiver answered 2xx once; both POSTs carry the one delivery id it deduplicates on.
    assert len(receiver.received) == 2
    assert {r.headers["Baton-Delivery-Id"] for r in receiver.received} == {delivery_id_of(execution_id)}
    a, b = receiver.received[0].body, receiver.received[1].body
    assert a == b, (a[1800:2100], b[1800:2100])
    kinds = [u.event.WhichOneof("kind") for u in history]
    assert kinds[-3:] == ["execution_completed", "callback_scheduled", "callback_delivered"]
    assert kinds.count("callback_delivered") == 1 and kinds.count("callback_scheduled") == 1
