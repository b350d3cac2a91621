"""The web view's JSON API and live streams over real HTTP on loopback: statuses, hostile input, SSE resume."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp import web
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

from agents_clients.tls import TlsFiles
from server.app import RunningServer, start_server
from server.config import ConfigError, ServerConfig
from server.web import HTTP_STATUS, make_app
from tests.conftest import free_port, output_of, spawn, wait_for_line
from tests.integration.auth_support import ALICE, BOB, bearer, make_keys, start_secured
from tests.integration.support import execute_plan, step, w_plan, watch_all
from tests.tls_support import TestCA, write_party

E = execution_pb2
O = orchestrator_pb2  # noqa: E741

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningServer]:
    server = await start_server(
        ServerConfig(
            listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents="embedded", web="127.0.0.1:0"
        )
    )
    try:
        yield server
    finally:
        await server.stop(0.5)


@pytest.fixture
async def http(running: RunningServer) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    assert running.web is not None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session, running.web.url


@pytest.fixture
async def stub(running: RunningServer) -> AsyncIterator[orchestrator_pb2_grpc.OrchestratorStub]:
    async with grpc.aio.insecure_channel(running.address) as channel:
        yield orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]


def _approval_plan() -> plan_pb2.OrchestrationPlan:
    """A → approve → B."""
    approve = plan_pb2.WorkflowStep(
        step_id="approve", step_name="approve", kind=plan_pb2.STEP_KIND_APPROVAL, dependencies=["A"]
    )
    approve.approval.prompt = "Go on?"
    return plan_pb2.OrchestrationPlan(
        workflow_type="approval", workflow_steps=[step("A"), approve, step("B", "approve")]
    )


async def _waiting(stub: orchestrator_pb2_grpc.OrchestratorStub, user: str = "u1") -> str:
    execution = await stub.ExecuteWorkflow(execute_plan(_approval_plan(), user_id=user))
    async for update in stub.WatchExecution(O.WatchExecutionRequest(execution_id=execution.execution_id), timeout=30):
        if update.event.HasField("step_waiting"):
            return str(execution.execution_id)
    raise AssertionError("the execution never waited")


async def _events(response: aiohttp.ClientResponse, until: str = "end") -> list[tuple[str, str | None, Any]]:
    """Reads server-sent events (name, id, data) until one named `until` (or the stream ends)."""
    events: list[tuple[str, str | None, Any]] = []
    name, event_id, data = "message", None, []
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            continue
        if line:
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
            continue
        if data:
            events.append((name, event_id, json.loads("\n".join(data))))
            if name == until:
                break
        name, event_id, data = "message", None, []
    return events


# ---- the status table and hostile input ------------------------------------------------------


def test_every_status_named_in_the_contract_maps_to_its_http_status() -> None:
    code = grpc.StatusCode
    assert {c: HTTP_STATUS[c] for c in (
        code.INVALID_ARGUMENT, code.NOT_FOUND, code.FAILED_PRECONDITION,
        code.PERMISSION_DENIED, code.UNAUTHENTICATED, code.RESOURCE_EXHAUSTED,
    )} == {
        code.INVALID_ARGUMENT: 400, code.NOT_FOUND: 404, code.FAILED_PRECONDITION: 409,
        code.PERMISSION_DENIED: 403, code.UNAUTHENTICATED: 401, code.RESOURCE_EXHAUSTED: 429,
    }  # fmt: skip
    assert 500 not in HTTP_STATUS.values()


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/executions?state=bogus", "state"),
        ("/api/executions?state=running,nope", "state"),
        ("/api/executions?page_size=0", "page_size"),
        ("/api/executions?page_size=201", "page_size"),
        ("/api/executions?page_size=-1", "page_size"),
        ("/api/executions?page_size=1e3", "page_size"),
        ("/api/executions?page_size=" + "9" * 40, "page_size"),
        ("/api/executions?user=" + "u" * 300, "user"),
        ("/api/executions?user=a%00b", "user"),
        ("/api/executions?user=a%0Ab", "user"),
        ("/api/executions?user=a&user=b", "user"),
        ("/api/executions?workflow=%1b[31m", "workflow"),
        ("/api/executions?page_token=" + "t" * 2000, "page_token"),
        ("/api/executions?sort=desc", "sort"),
        ("/api/executions/x?verbose=1", "verbose"),
        ("/api/executions/" + "x" * 300, "execution_id"),
        ("/api/executions/x/events?after=-1", "after"),
        ("/api/executions/x/events?after=abc", "after"),
        ("/api/executions/x/events?after=" + "9" * 25, "after"),
        ("/api/health?x=1", "x"),
    ],
)
async def test_a_hostile_query_is_a_400_naming_the_parameter(
    http: tuple[aiohttp.ClientSession, str], path: str, parameter: str
) -> None:
    session, url = http
    async with session.get(url + path) as response:
        body = await response.json()
    assert response.status == 400, body
    assert body["error"]["code"] == "INVALID_ARGUMENT"
    assert body["error"]["parameter"] == parameter
    assert body["error"]["message"].startswith(f"{parameter}: ")


@pytest.mark.parametrize("header", ["abc", "-1", "1.5", "9" * 30, "4611686018427387905"])
async def test_a_hostile_last_event_id_is_a_400(http: tuple[aiohttp.ClientSession, str], header: str) -> None:
    session, url = http
    async with session.get(url + "/api/executions/x/events", headers={"Last-Event-ID": header}) as response:
        body = await response.json()
    assert (response.status, body["error"]["parameter"]) == (400, "Last-Event-ID")


async def test_an_approval_payload_too_deep_to_convert_is_a_400(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, url = http
    deep = '{"payload": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}"
    headers = {"Content-Type": "application/json"}
    async with session.post(url + "/api/executions/x/approve", data=deep, headers=headers) as response:
        body = await response.json()
    assert response.status == 400, body
    assert body["error"]["code"] == "INVALID_ARGUMENT"


async def test_the_orchestrators_refusals_become_their_http_statuses(
    http: tuple[aiohttp.ClientSession, str], stub: orchestrator_pb2_grpc.OrchestratorStub
) -> None:
    session, url = http
    async with session.get(url + "/api/executions/no-such-execution") as response:
        assert response.status == 404
        assert (await response.json())["error"] == {
            "code": "NOT_FOUND",
            "message": "execution_id: no execution 'no-such-execution'",
        }
    async with session.get(url + "/api/executions/no-such-execution/events") as response:
        assert response.status == 404  # before any stream is answered
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    await watch_all(stub, execution.execution_id)
    post = {"json": {"reason": "too late"}}
    async with session.post(f"{url}/api/executions/{execution.execution_id}/resume", **post) as response:
        body = await response.json()
        assert response.status == 409, body
        assert body["error"]["code"] == "FAILED_PRECONDITION"
    async with session.post(f"{url}/api/executions/{execution.execution_id}/approve", **post) as response:
        assert response.status == 409


@pytest.mark.parametrize(
    ("kwargs", "status", "parameter"),
    [
        ({"data": "not json", "headers": {"Content-Type": "application/json"}}, 400, "body"),
        ({"json": [1, 2]}, 400, "body"),
        ({"json": {"reason": 5}}, 400, "reason"),
        ({"json": {"reason": "r" * 2000}}, 400, "reason"),
        ({"json": {"why": "x"}}, 400, "why"),
        ({"json": {"payload": [1]}}, 400, "payload"),
        ({"json": {"payload": {"a": 1}}}, 400, "payload"),  # only approve takes one
        ({"json": {"step_id": "A", "payload": {"a": 1}}}, 400, "payload"),
        ({"json": {"step_id": "A"}}, 400, "step_id"),  # only approve and reject name a step
        ({"data": "x" * 70_000, "headers": {"Content-Type": "application/json"}}, 400, "body"),
    ],
)
async def test_a_hostile_action_body_is_a_400_naming_the_field(
    http: tuple[aiohttp.ClientSession, str], kwargs: dict[str, Any], status: int, parameter: str
) -> None:
    session, url = http
    async with session.post(url + "/api/executions/x/pause", **kwargs) as response:
        body = await response.json()
    assert (response.status, body["error"].get("parameter")) == (status, parameter), body


async def test_actions_refuse_forms_other_origins_and_unknown_verbs(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, url = http
    async with session.post(url + "/api/executions/x/cancel", data="reason=x") as response:
        assert response.status == 415  # a cross-site form cannot send JSON
    headers = {"Origin": "http://evil.example"}
    async with session.post(url + "/api/executions/x/cancel", json={}, headers=headers) as response:
        assert response.status == 403
    # The same host behind a proxy that ends TLS (https in the page, http here) is the page's own.
    same = {"Origin": url.replace("http://", "https://")}
    async with session.post(url + "/api/executions/x/cancel", json={}, headers=same) as response:
        assert response.status == 404  # past the origin check: the execution does not exist
    async with session.post(url + "/api/executions/x/explode", json={}) as response:
        assert response.status == 404
    async with session.get(url + "/api/executions/x/cancel") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "METHOD_NOT_ALLOWED"
    async with session.get(url + "/api/nothing") as response:
        assert (response.status, response.content_type) == (404, "application/json")


async def test_the_list_filters_and_pages_with_the_orchestrators_tokens(
    http: tuple[aiohttp.ClientSession, str], stub: orchestrator_pb2_grpc.OrchestratorStub
) -> None:
    session, url = http
    ids = set()
    for user in ("ann", "ann", "ann", "ben"):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id=user))
        await watch_all(stub, execution.execution_id)
        ids.add(execution.execution_id)
    seen: list[str] = []
    token = ""
    for _ in range(3):
        query = "user=ann&state=completed&workflow=w&page_size=2" + (f"&page_token={token}" if token else "")
        async with session.get(f"{url}/api/executions?{query}") as response:
            assert response.status == 200
            page = await response.json()
        seen += [e["execution_id"] for e in page["executions"]]
        assert {e["user_id"] for e in page["executions"]} == {"ann"}
        token = page.get("next_page_token", "")
        if not token:
            break
    assert len(seen) == len(set(seen)) == 3
    async with session.get(f"{url}/api/executions?state=running,failed") as response:
        assert (await response.json()).get("executions", []) == []


# ---- live streams ------------------------------------------------------------------------------


async def test_a_stream_resumed_by_last_event_id_delivers_each_sequence_once(
    http: tuple[aiohttp.ClientSession, str], stub: orchestrator_pb2_grpc.OrchestratorStub
) -> None:
    session, url = http
    execution_id = await _waiting(stub)
    stream = f"{url}/api/executions/{execution_id}/events"
    async with session.get(stream) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await _events(response, until="update")
        while first[-1][2]["event"].get("step_waiting") is None:
            first += await _events(response, until="update")
    # The connection is gone; the execution goes on without a watcher.
    last = first[-1][1]
    assert last is not None
    async with session.post(f"{url}/api/executions/{execution_id}/approve", json={"reason": "web"}) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["execution_id"] == execution_id
    async with session.get(stream, headers={"Last-Event-ID": last}) as response:
        rest = await _events(response)
    assert rest[-1][0] == "end"
    sequences = [int(e[1]) for e in first + rest if e[0] == "update" and e[1] is not None]
    assert sequences == list(range(1, len(sequences) + 1)), sequences
    assert all(int(e[2]["sequence"]) == int(e[1]) for e in first + rest if e[0] == "update")
    final = [e[2] for e in rest if e[0] == "update"][-1]
    assert final["status"]["status"] == "EXECUTION_STATE_COMPLETED"
    kinds = [next(k for k in e[2]["event"] if k not in ("sequence", "time", "actor")) for e in rest if e[0] == "update"]
    assert kinds[0] == "signal_received"
    # A finished execution's stream, resumed at its end, says "end" at once instead of replaying.
    async with session.get(stream, headers={"Last-Event-ID": str(sequences[-1])}) as response:
        assert [e[0] for e in await _events(response)] == ["end"]
    # ?after=N does the same for a client that cannot set headers.
    async with session.get(f"{stream}?after={sequences[-3]}") as response:
        replay = await _events(response)
    assert [int(e[1]) for e in replay if e[1] is not None] == sequences[-2:]


async def test_streams_are_capped_and_a_gone_client_frees_its_slot_and_watch(
    running: RunningServer, stub: orchestrator_pb2_grpc.OrchestratorStub
) -> None:
    execution_id = await _waiting(stub)
    async with grpc.aio.insecure_channel(running.address) as channel:
        app, handlers = make_app(orchestrator_pb2_grpc.OrchestratorStub(channel), max_streams=1)  # type: ignore[no-untyped-call]
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/executions/{execution_id}/events"
        watchers_before = running.hub.watchers
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
                async with session.get(url) as first:
                    await _events(first, until="update")
                    assert handlers.open_streams == 1
                    async with session.get(url) as second:
                        assert second.status == 429
                        assert second.headers["Retry-After"] == "5"
                        assert (await second.json())["error"]["code"] == "RESOURCE_EXHAUSTED"
                for _ in range(100):  # the first client went away: its slot and its watch are freed
                    if handlers.open_streams == 0 and running.hub.watchers == watchers_before:
                        break
                    await asyncio.sleep(0.05)
                assert (handlers.open_streams, running.hub.watchers) == (0, watchers_before)
                async with session.get(url) as third:
                    assert third.status == 200
        finally:
            await runner.cleanup()
    await stub.CancelExecution(O.CancelExecutionRequest(execution_id=execution_id))


# ---- authorization applies through the view ----------------------------------------------------


async def test_the_browsers_token_is_forwarded_and_the_policy_answers(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    running = await start_secured(tmp_path, keys, web="127.0.0.1:0")
    try:
        assert running.web is not None
        url = running.web.url
        alice = {"Authorization": f"Bearer {keys.token(ALICE)}"}
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
            execution = await stub.ExecuteWorkflow(
                execute_plan(w_plan(), user_id=""), metadata=bearer(keys.token(ALICE))
            )
        target = f"{url}/api/executions/{execution.execution_id}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            async with session.get(url + "/api/executions") as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                assert (await response.json())["error"]["code"] == "UNAUTHENTICATED"
            async with session.get(target, headers=alice) as response:
                assert response.status == 200
                assert (await response.json())["user_id"] == ALICE
            async with session.get(target, headers={"Authorization": f"Bearer {keys.token(BOB)}"}) as response:
                assert response.status == 404  # another user's execution does not exist for them
            operator = {"Authorization": f"Bearer {keys.token('oscar', 'operator')}"}
            async with session.post(target + "/cancel", json={}, headers=operator) as response:
                assert response.status == 403
                assert (await response.json())["error"]["code"] == "PERMISSION_DENIED"
            async with session.get(target + "/events", headers={"Authorization": "Bearer junk"}) as response:
                assert response.status == 401
            async with session.get(target, headers={"Authorization": "Bearer t\u00f6ken"}) as response:
                assert response.status == 400
            async with session.get(url + "/api/executions", headers=alice) as response:
                listed = [e["execution_id"] for e in (await response.json())["executions"]]
            assert listed == [execution.execution_id]
    finally:
        await running.stop(0.5)


def test_a_web_view_off_loopback_needs_authentication_and_tls_or_plaintext_said() -> None:
    with pytest.raises(ConfigError, match=r"^web: 0\.0\.0\.0:8088 is not a loopback address and no --auth"):
        ServerConfig(web="0.0.0.0:8088")
    with pytest.raises(ConfigError, match="no --tls-cert"):
        ServerConfig(web="0.0.0.0:8088", auth="none")
    assert ServerConfig(web="0.0.0.0:8088", auth="none", plaintext=True).web == "0.0.0.0:8088"
    with pytest.raises(ConfigError, match=r"^web: expected HOST:PORT"):
        ServerConfig(web="8088")


async def test_the_pages_and_their_files_are_served_with_a_strict_policy(
    http: tuple[aiohttp.ClientSession, str],
) -> None:
    session, url = http
    for path, kind in [
        ("/executions", "text/html"),
        ("/executions/anything", "text/html"),
        ("/agents", "text/html"),
        ("/static/execution.js", "javascript"),  # text/ or application/, by the host's mime types
        ("/static/style.css", "text/css"),
    ]:
        async with session.get(url + path) as response:
            assert response.status == 200, path
            assert response.content_type.endswith(kind), (path, response.content_type)
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    async with session.get(url + "/", allow_redirects=False) as response:
        assert (response.status, response.headers["Location"]) == (302, "/executions")
    async with session.get(url + "/static/../app.py") as response:
        assert response.status in (403, 404)


async def test_stopping_the_server_ends_its_open_streams_at_once(tmp_path: Path) -> None:
    server = await start_server(
        ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", web="127.0.0.1:0")
    )
    try:
        assert server.web is not None
        async with grpc.aio.insecure_channel(server.address) as channel:
            execution_id = await _waiting(orchestrator_pb2_grpc.OrchestratorStub(channel))  # type: ignore[no-untyped-call]
        url = f"{server.web.url}/api/executions/{execution_id}/events"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
            session.get(url) as response,
        ):
            await _events(response, until="update")
            assert server.web.open_streams == 1
            started = asyncio.get_running_loop().time()
            await server.stop(0.5)
            assert asyncio.get_running_loop().time() - started < 5  # not aiohttp's 60 s wait for the stream
            with pytest.raises(aiohttp.ClientPayloadError):
                await _events(response)  # the stream broke off: its client reconnects elsewhere
    finally:
        await server.stop(0.5)


# ---- baton demo --web ----------------------------------------------------------------------------


async def test_the_demo_serves_its_journeys_page_until_interrupted(processes: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    demo = spawn("-m", "server.cli", "demo", "--web", f"127.0.0.1:{port}", "--latency", "20")
    processes.append(demo)
    page = wait_for_line(demo, "web view: http://", timeout=30).split("web view: ")[1].strip()
    wait_for_line(demo, f"serving the web view on http://127.0.0.1:{port} until Ctrl-C", timeout=60)
    execution_id = page.rsplit("/", 1)[1]
    assert page == f"http://127.0.0.1:{port}/executions/{execution_id}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        async with session.get(page) as response:
            assert (response.status, response.content_type) == (200, "text/html")
        async with session.get(f"http://127.0.0.1:{port}/api/executions/{execution_id}") as response:
            status = await response.json()
    assert (status["workflow_type"], status["status"]) == ("application_automation", "EXECUTION_STATE_COMPLETED")
    demo.send_signal(signal.SIGINT)
    assert await asyncio.to_thread(demo.wait, 15) == 0, output_of(demo)  # Ctrl-C ends it; the journey's status


@pytest.mark.parametrize("address", ["0.0.0.0:8088", "8088", "127.0.0.1:http"])
def test_the_demo_refuses_a_web_address_off_loopback_or_malformed(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    assert main(["demo", "--web", address]) == 2
    assert "web" in capsys.readouterr().err


async def test_with_a_certificate_the_view_serves_https_and_still_reaches_an_mtls_server(tmp_path: Path) -> None:
    ca = TestCA()
    party = write_party(ca, ca.server(), tmp_path / "pki", "orchestrator")
    # --tls-ca: gRPC clients need a certificate; browsers do not (bearer tokens are what authenticate them).
    server = await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            web="127.0.0.1:0",
            tls=TlsFiles(cert=str(party.cert), key=str(party.key), ca=str(party.ca)),
        )
    )
    try:
        assert server.web is not None
        assert server.web.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(party.ca))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            async with session.get(server.web.url + "/api/health", ssl=trusting) as response:
                assert response.status == 200
                assert (await response.json())["overall_health"].startswith("OVERALL_HEALTH_")
            with pytest.raises(aiohttp.ClientError):
                await session.get(server.web.url.replace("https:", "http:") + "/api/health")
    finally:
        await server.stop(0.5)
