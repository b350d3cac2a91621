"""The scale runs of ``python -m bench`` (issue 12): executions held in flight, watchers, recovery, health.

Each run starts its own agent process and its own ``baton serve`` (``bench.run``'s
``orchestrator_process``) on a fresh store (SQLite in a temporary directory, or a fresh database
on the PostgreSQL server ``--store`` names); this process is the client. Every run stops what it
started. The per-user quotas that a single benchmark client would trip (600 submissions a minute,
256 watches per client address) are lifted (`SERVE_ARGS`); every other server default stays.

- **hold** (``--agent-latency S --inflight N``): agents answer after S seconds; N executions of W
  are submitted, 64 at a time, and held (each step's timeout is S + 120 s, so none retries).
  RSS idle is the orchestrator's VmRSS once it serves and answered one GetSystemHealth; RSS at
  full is its VmRSS once GetSystemHealth counts N active workflows (or 30 s after the last
  submission) and one more second has passed; per execution = (full - idle) / N. The submission
  latency is each ExecuteWorkflow's, while the earlier ones are held. Then everything is stopped
  (SIGTERM; nothing waits for the agents). With ``--hold-output-bytes B`` the agent is
  ``bench.recording_agent``: step A answers at once with a ~B-byte output, so each held
  execution has one output recorded and three calls (B, C, D) in flight — issue 12's "1 KB
  outputs"; without it each holds step A's call and no output.
- **watchers** (``--watchers W``): W / 10 executions of W (``--watchers-per-execution``), agents
  at 1 s a call (``--watch-agent-latency-ms``), so each runs ~3 s; once all are submitted, 10
  streams are opened on each (``after_sequence`` 0, over 8 connections). The update latency is
  the client's receive time minus the event's own ``time`` (set by the orchestrator when it
  recorded the event; same machine, same clock), counted for the events recorded after the
  stream was opened (the history replayed to a late watcher is not a live update). That latency
  includes this client's own work (one process decoding every update of every stream): the
  client's and the orchestrator's CPU seconds while the streams ran are reported beside it.
- **recover** (``--recover N``): ``bench.recording_agent`` (prints each call as it arrives)
  answers after 60 s; N executions are submitted and the agent has seen each one's first call;
  then ``kill -9`` of the orchestrator and a new one on the same store. **Recovery time** = from
  starting the new process until the agent has received, from it, a call for each of the N
  executions (each re-issued call of a step that was started and not finished: "running
  again"). Also reported: the time until the new process said it serves.
- **health during a burst** (``--health-during-burst N``): agents at 2 s a call; a
  ``bench.health_poller`` process polls GetSystemHealth every 50 ms while this process fires N
  ExecuteWorkflow calls at once (each with a 60 s deadline). Polls started between the burst's
  first call and its last answer count; the answers to the burst are counted by status code.

With ``--profile DIR`` the hold, watchers and burst runs have py-spy sample the orchestrator's GIL
holder (nonblocking: it is never paused) during the measured phase (the submissions, the
streams, the burst), write ``DIR/NAME-gil.collapsed.txt`` and put the hot spots in ``profile``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from bench import _profile
from bench._common import ROOT, USER_ID, Child, address_in, free_port, percentile, python, w_plan
from bench.run import START_TIMEOUT_S, agent_process, orchestrator_process, store_url

SERVE_ARGS = ("--submissions-per-minute", "0", "--max-watches-per-user", "0")
"""``serve`` flags of every scale run: one client may submit and watch without the per-user quotas."""
SUBMIT_CONCURRENCY = 64
"""Submissions in flight at once when a run submits many (the burst excepted)."""
SUBMIT_TIMEOUT_S = 60.0
STEP_TIMEOUT_MARGIN_S = 120.0
"""A held step's timeout is the agents' latency plus this: a held call never times out and retries."""
PROFILE_TOP = 12
"""Functions per ranking (self, inclusive) a profiled run puts in its JSON."""
CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),)
"""Each channel its own connection (grpc shares one between channels with the same arguments)."""


def _ms(values: list[float], pct: float) -> float | None:
    value = percentile(values, pct)
    return None if math.isnan(value) else round(value, 3)


def _mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


@contextlib.contextmanager
def _profiled(orchestrator: Child, profile_dir: Path | None, name: str, into: dict[str, Any]) -> Iterator[None]:
    """With `profile_dir`: py-spy samples the GIL holder of `orchestrator` (nonblocking) while the
    block runs, into ``NAME-gil.collapsed.txt`` there; its hot spots go to ``into["profile"]``."""
    if profile_dir is None:
        yield
        return
    profile_dir.mkdir(parents=True, exist_ok=True)
    output = profile_dir / f"{name}-gil.collapsed.txt"
    recorder = _profile.start_recording(orchestrator.pid, output, "gil")
    try:
        yield
    finally:
        printed = _profile.stop_recording(recorder)
        if output.is_file():
            spots = _profile.hot_spots(output, top=PROFILE_TOP)
            into["profile"] = {"collapsed": str(output), **spots}
        else:
            into["profile"] = {"error": f"py-spy wrote no profile: {printed[-300:]}"}


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="baton-scale-") as tmp:
        yield Path(tmp)


async def _submit_many(
    target: str, n: int, latency_s: float, concurrency: int = SUBMIT_CONCURRENCY
) -> tuple[list[str], list[float], Counter[str]]:
    """Submits n executions of W, `concurrency` at a time; returns their ids, latencies (ms), errors."""
    request = orchestrator_pb2.ExecuteWorkflowRequest(plan=w_plan(latency_s + STEP_TIMEOUT_MARGIN_S))
    request.user_context.user_id = USER_ID
    ids: list[str] = []
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    remaining = n
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), SUBMIT_TIMEOUT_S)
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                try:
                    execution = await stub.ExecuteWorkflow(request, timeout=SUBMIT_TIMEOUT_S)
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000.0)
                ids.append(execution.execution_id)

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, n)))))
    return ids, latencies, errors


async def _health(target: str) -> orchestrator_pb2.SystemHealth:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        health: orchestrator_pb2.SystemHealth = await stub.GetSystemHealth(
            orchestrator_pb2.GetSystemHealthRequest(), timeout=SUBMIT_TIMEOUT_S
        )
        return health


# ---------------------------------------------------------------------------------------------
# hold: N executions in flight


async def _sample(target: str, execution_id: str, with_output: bool) -> dict[str, Any]:
    """What one held execution is doing: its running steps, and the size of step A's output."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        status = await stub.GetExecution(
            orchestrator_pb2.GetExecutionRequest(execution_id=execution_id), timeout=SUBMIT_TIMEOUT_S
        )
        sample: dict[str, Any] = {"sample_running_steps": sorted(status.progress.running_steps)}
        if with_output:
            output = await stub.GetStepOutput(
                orchestrator_pb2.GetStepOutputRequest(execution_id=execution_id, step_id="A"), timeout=SUBMIT_TIMEOUT_S
            )
            sample["sample_output_bytes"] = output.output.ByteSize()
        return sample


@contextlib.contextmanager
def _hold_agents(latency_s: float, output_bytes: int, workdir: Path) -> Iterator[str]:
    """The hold run's agents: the reference fleet, or with `output_bytes` the recording agent
    answering step A at once with an output that size (B, C, D then held)."""
    if not output_bytes:
        with agent_process(latency_s * 1000.0, workdir) as agents:
            yield agents
        return
    extra = ("--fast-step", "A", "--output-bytes", str(output_bytes), "--quiet")
    with _recording_agent(latency_s, workdir, extra) as (_, agents):
        yield agents


def run_hold(
    n: int, latency_s: float, store: str, output_bytes: int = 0, profile_dir: Path | None = None
) -> dict[str, Any]:
    """N executions held against agents that take `latency_s`: RSS per execution, submission latency.

    With `output_bytes`, each execution's step A completes at once with an output about that
    size, and its steps B, C and D are held (three calls in flight each).
    """
    with (
        _scratch() as tmp,
        _hold_agents(latency_s, output_bytes, tmp) as agents,
        store_url(store, tmp) as url,
        orchestrator_process(agents, tmp, url, SERVE_ARGS) as (orchestrator, address),
    ):
        asyncio.run(_health(address))
        idle_kb = orchestrator.rss_kb()
        started = time.perf_counter()
        profiled: dict[str, Any] = {}
        with _profiled(orchestrator, profile_dir, "hold", profiled):
            ids, latencies, errors = asyncio.run(_submit_many(address, n, latency_s))
        submit_s = time.perf_counter() - started
        deadline = time.monotonic() + 30.0
        active = asyncio.run(_health(address)).active_workflows
        while active < len(ids) and time.monotonic() < deadline:
            time.sleep(0.5)
            active = asyncio.run(_health(address)).active_workflows
        time.sleep(1.0)
        full_kb = orchestrator.rss_kb()
        peak_kb = orchestrator.peak_rss_kb()
        active = asyncio.run(_health(address)).active_workflows
        sample = asyncio.run(_sample(address, ids[0], output_bytes > 0)) if ids else {}
    per_kb = (full_kb - idle_kb) / n if full_kb is not None and idle_kb is not None and n else None
    return {
        "n": n,
        "agent_latency_s": latency_s,
        "output_bytes": output_bytes,
        "calls_held_per_execution": 3 if output_bytes else 1,
        "submitted": len(ids),
        "failed": n - len(ids),
        "errors": dict(errors),
        "active_at_full": active,
        **sample,
        "submit_s": round(submit_s, 3),
        "submit_p50_ms": _ms(latencies, 50),
        "submit_p99_ms": _ms(latencies, 99),
        "rss_idle_mb": _mb(idle_kb),
        "rss_full_mb": _mb(full_kb),
        "peak_rss_mb": _mb(peak_kb),
        "rss_per_execution_kb": None if per_kb is None else round(per_kb, 2),
        **profiled,
    }


# ---------------------------------------------------------------------------------------------
# watchers: update latency from commit to watcher


async def _watch_all(target: str, ids: list[str], per_execution: int, connections: int) -> dict[str, Any]:
    channels = [grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) for _ in range(connections)]
    latencies: list[float] = []
    replayed = 0
    ends: Counter[str] = Counter()
    try:
        await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), SUBMIT_TIMEOUT_S) for c in channels))
        stubs = [orchestrator_pb2_grpc.OrchestratorStub(c) for c in channels]  # type: ignore[no-untyped-call]

        async def watch(index: int, execution_id: str) -> None:
            nonlocal replayed
            opened = time.time()
            last = None
            try:
                stream = stubs[index % len(stubs)].WatchExecution(
                    orchestrator_pb2.WatchExecutionRequest(execution_id=execution_id), timeout=120.0
                )
                async for update in stream:
                    received = time.time()
                    if update.heartbeat:
                        continue
                    last = update
                    recorded = update.event.time.ToNanoseconds() / 1e9
                    if recorded >= opened:
                        latencies.append((received - recorded) * 1000.0)
                    else:
                        replayed += 1
            except grpc.aio.AioRpcError as error:
                ends[error.code().name] += 1
                return
            state = execution_pb2.ExecutionState.Name(last.status.status) if last is not None else "no update"
            ends[state] += 1

        started = time.perf_counter()
        cpu = time.process_time()
        tasks = [watch(i * per_execution + j, eid) for i, eid in enumerate(ids) for j in range(per_execution)]
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        for channel in channels:
            await channel.close()
    return {
        "latencies": latencies,
        "replayed": replayed,
        "ends": dict(ends),
        "elapsed_s": round(elapsed, 3),
        "client_cpu_s": round(cpu, 3),
    }


def run_watchers(
    watchers: int, per_execution: int, latency_ms: float, store: str, profile_dir: Path | None = None
) -> dict[str, Any]:
    """`watchers` streams, `per_execution` on each running execution: update latency commit → watcher."""
    executions = max(1, math.ceil(watchers / per_execution))
    with (
        _scratch() as tmp,
        agent_process(latency_ms, tmp) as agents,
        store_url(store, tmp) as url,
        orchestrator_process(agents, tmp, url, SERVE_ARGS) as (orchestrator, address),
    ):
        ids, _, errors = asyncio.run(_submit_many(address, executions, latency_ms / 1000.0))
        cpu0 = orchestrator.cpu_s()
        profiled: dict[str, Any] = {}
        with _profiled(orchestrator, profile_dir, "watchers", profiled):
            watched = asyncio.run(_watch_all(address, ids, per_execution, connections=8))
        cpu1 = orchestrator.cpu_s()
        peak_kb = orchestrator.peak_rss_kb()
    latencies = watched["latencies"]
    ends = watched["ends"]
    return {
        "watchers": len(ids) * per_execution,
        "executions": executions,
        "watchers_per_execution": per_execution,
        "agent_latency_ms": latency_ms,
        "submit_failed": executions - len(ids),
        "submit_errors": dict(errors),
        "live_updates": len(latencies),
        "replayed_updates": watched["replayed"],
        "stream_ends": ends,
        "failed": sum(count for end, count in ends.items() if end != "EXECUTION_STATE_COMPLETED")
        + (executions - len(ids)) * per_execution,
        "update_p50_ms": _ms(latencies, 50),
        "update_p99_ms": _ms(latencies, 99),
        "update_max_ms": round(max(latencies), 3) if latencies else None,
        "elapsed_s": watched["elapsed_s"],
        "client_cpu_s": watched["client_cpu_s"],
        "orchestrator_cpu_s": round(cpu1 - cpu0, 3) if cpu0 is not None and cpu1 is not None else None,
        "peak_rss_mb": _mb(peak_kb),
        **profiled,
    }


# ---------------------------------------------------------------------------------------------
# recover: kill -9 with N unfinished executions, restart, time until all are running again


@contextlib.contextmanager
def _recording_agent(latency_s: float, workdir: Path, extra: tuple[str, ...] = ()) -> Iterator[tuple[Child, str]]:
    requested = f"127.0.0.1:{free_port()}"
    argv = [python(), "-m", "bench.recording_agent", "--listen", requested, "--latency", f"{latency_s:g}", *extra]
    child = Child("recording-agent", argv, workdir / "recording-agent.log")
    try:
        line = child.wait_for("serving on", START_TIMEOUT_S)
        yield child, address_in(line, requested)
    finally:
        child.stop()


def _calls(agent: Child, start: int) -> dict[str, float]:
    """Execution id → wall time of its first call among the agent's output lines from `start`."""
    first: dict[str, float] = {}
    for line in agent.lines_since(start):
        word, _, rest = line.strip().partition(" ")
        if word != "call":
            continue
        at, _, key = rest.partition(" ")
        first.setdefault(key.split("/", 1)[0], float(at))
    return first


def _wait_for_calls(agent: Child, start: int, ids: set[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    seen = _calls(agent, start)
    while not ids <= seen.keys() and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = _calls(agent, start)
    return {execution_id: at for execution_id, at in seen.items() if execution_id in ids}


def run_recover(n: int, latency_s: float, store: str) -> dict[str, Any]:
    """N unfinished executions, ``kill -9``, restart on the same store: seconds until all run again."""
    wait_s = 60.0 + n / 20.0
    with _scratch() as tmp, _recording_agent(latency_s, tmp) as (agent, agents), store_url(store, tmp) as url:
        with orchestrator_process(agents, tmp, url, SERVE_ARGS, "orchestrator-1.log") as (first, address):
            ids, _, errors = asyncio.run(_submit_many(address, n, latency_s))
            before = _wait_for_calls(agent, 0, set(ids), wait_s)
            first.kill()
        mark = len(agent.lines_since(0))
        restarted = time.time()
        with orchestrator_process(agents, tmp, url, SERVE_ARGS, "orchestrator-2.log") as (_, address):
            serving = time.time()
            again = _wait_for_calls(agent, mark, set(ids), wait_s)
            active = asyncio.run(_health(address)).active_workflows
    last = max(again.values(), default=math.nan)
    return {
        "n": n,
        "agent_latency_s": latency_s,
        "submitted": len(ids),
        "submit_errors": dict(errors),
        "running_before_kill": len(before),
        "running_again": len(again),
        "failed": n - len(again),
        "active_after_restart": active,
        "restart_to_serving_s": round(serving - restarted, 3),
        "recovery_s": round(last - restarted, 3) if again and len(again) == len(ids) else None,
        "recovery_p50_s": round(percentile([t - restarted for t in again.values()], 50), 3) if again else None,
    }


# ---------------------------------------------------------------------------------------------
# GetSystemHealth during a burst of submissions


async def _burst(target: str, n: int, latency_s: float) -> tuple[Counter[str], dict[str, str], float, float]:
    request = orchestrator_pb2.ExecuteWorkflowRequest(plan=w_plan(latency_s + STEP_TIMEOUT_MARGIN_S))
    request.user_context.user_id = USER_ID
    codes: Counter[str] = Counter()
    details: dict[str, str] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), SUBMIT_TIMEOUT_S)
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]

        async def one() -> None:
            try:
                await stub.ExecuteWorkflow(request, timeout=SUBMIT_TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                codes[error.code().name] += 1
                if error.code().name not in details:
                    details[error.code().name] = error.details() or ""
            else:
                codes["OK"] += 1

        started = time.time()
        await asyncio.gather(*(one() for _ in range(n)))
        ended = time.time()
    return codes, details, started, ended


def run_health_burst(
    n: int, latency_s: float, store: str, interval: float = 0.05, profile_dir: Path | None = None
) -> dict[str, Any]:
    """GetSystemHealth polled every `interval` s from its own process while N submissions arrive at once."""
    with (
        _scratch() as tmp,
        agent_process(latency_s * 1000.0, tmp) as agents,
        store_url(store, tmp) as url,
        orchestrator_process(agents, tmp, url, SERVE_ARGS) as (orchestrator, address),
    ):
        argv = [python(), "-m", "bench.health_poller", "--target", address, "--interval", f"{interval:g}"]
        poller = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert poller.stdout is not None and poller.stdin is not None
            if poller.stdout.readline().strip() != "polling":
                raise RuntimeError(f"the health poller did not start: {poller.stderr.read() if poller.stderr else ''}")
            time.sleep(1.0)
            profiled: dict[str, Any] = {}
            with _profiled(orchestrator, profile_dir, "health-burst", profiled):
                codes, details, started, ended = asyncio.run(_burst(address, n, latency_s))
            out, err = poller.communicate("", timeout=30.0)
        finally:
            if poller.poll() is None:
                poller.kill()
                poller.wait(5)
        peak_kb = orchestrator.peak_rss_kb()
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError(f"the health poller printed nothing: {err[-2000:]}")
    polls = json.loads(lines[-1])["polls"]
    during = [p for p in polls if started <= p[0] <= ended]
    ms = [float(p[1]) for p in during]
    quiet = [float(p[1]) for p in polls if p[0] < started]
    return {
        "n": n,
        "agent_latency_s": latency_s,
        "burst_s": round(ended - started, 3),
        "answers": dict(codes),
        "error_details": details,
        "failed": n - codes["OK"],
        "polls_during": len(during),
        "poll_errors": dict(Counter(str(p[2]) for p in during if p[2] != "OK")),
        "health_p50_ms": _ms(ms, 50),
        "health_p99_ms": _ms(ms, 99),
        "health_max_ms": round(max(ms), 3) if ms else None,
        "health_quiet_p50_ms": _ms(quiet, 50),
        "peak_rss_mb": _mb(peak_kb),
        **profiled,
    }
