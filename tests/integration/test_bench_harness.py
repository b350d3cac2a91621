"""``python -m bench`` runs end to end in real processes: the workload and each scale run, at tiny sizes.

Not timed tests: they never assert a speed, only that the command prints the JSON object its
docstring promises, that every workflow completed and that the figures are sane (positive,
finite, consistent with each other).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import _profile
from bench.run import LOCAL_POSTGRES
from tests.integration.pg_support import fresh_database

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD_KEYS = {
    "throughput_wfps",
    "p50_ms",
    "p99_ms",
    "overhead_per_step_ms",
    "peak_rss_mb",
    "floor_throughput_wfps",
    "floor_p50_ms",
    "ratio",
    "workload",
    "n",
    "inflight",
    "store",
    "failed",
}


def bench(*args: str, timeout: float = 60.0) -> dict[str, Any]:
    """Runs ``python -m bench ARGS --json`` from the repository root; returns its JSON object."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT), str(ROOT / "generated")))}
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout  # one JSON object, nothing else on stdout
    result: dict[str, Any] = json.loads(lines[0])
    return result


def positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and value > 0 and math.isfinite(value)


@pytest.mark.timeout(60)
def test_w0_prints_one_json_object_with_baton_beside_the_floor_of_the_same_run() -> None:
    result = bench("--workload", "W0", "--n", "20", "--inflight", "4", "--warmup", "2")

    assert result.keys() >= WORKLOAD_KEYS, result
    assert (result["workload"], result["n"], result["inflight"], result["store"]) == ("W0", 20, 4, "sqlite")
    assert result["failed"] == 0 and result["floor_failed"] == 0, result
    for key in ("throughput_wfps", "p50_ms", "p99_ms", "peak_rss_mb", "floor_throughput_wfps", "floor_p50_ms"):
        assert positive(result[key]), (key, result)
    assert result["p99_ms"] >= result["p50_ms"]
    assert result["ratio"] == pytest.approx(result["throughput_wfps"] / result["floor_throughput_wfps"], abs=1e-3)
    assert result["overhead_per_step_ms"] == pytest.approx((result["p50_ms"] - result["floor_p50_ms"]) / 3, abs=1e-3)


@pytest.mark.timeout(60)
async def test_w0_runs_on_a_fresh_postgres_database() -> None:
    async with fresh_database():
        pass  # skips here when no PostgreSQL server answers (fails in CI)

    result = bench("--workload", "W0", "--n", "10", "--warmup", "1", "--store", LOCAL_POSTGRES)

    assert result["store"] == "postgresql" and result["failed"] == 0, result
    assert positive(result["throughput_wfps"]) and positive(result["ratio"]), result


@pytest.mark.timeout(60)
def test_the_hold_run_holds_every_execution_and_measures_memory_and_submissions() -> None:
    result = bench("--agent-latency", "20", "--inflight", "100")

    hold = result["hold"]
    assert "workload" not in result  # a scale run alone: no workload unless asked
    assert hold["submitted"] == 100 and hold["failed"] == 0, hold
    assert hold["active_at_full"] == 100, hold  # all held at once: agents take 20 s
    assert hold["sample_running_steps"] == ["A"], hold
    assert positive(hold["submit_p50_ms"]) and hold["submit_p99_ms"] >= hold["submit_p50_ms"], hold
    assert hold["rss_full_mb"] >= hold["rss_idle_mb"] > 0 and hold["peak_rss_mb"] >= hold["rss_full_mb"], hold
    per_kb = (hold["rss_full_mb"] - hold["rss_idle_mb"]) * 1024 / 100
    assert hold["rss_per_execution_kb"] == pytest.approx(per_kb, rel=0.05, abs=2), hold


@pytest.mark.timeout(60)
def test_the_hold_run_with_outputs_holds_three_calls_after_an_output_of_the_size_asked() -> None:
    result = bench("--agent-latency", "20", "--inflight", "50", "--hold-output-bytes", "1024")

    hold = result["hold"]
    assert hold["submitted"] == hold["active_at_full"] == 50 and hold["failed"] == 0, hold
    assert hold["sample_running_steps"] == ["B", "C", "D"], hold  # A answered at once, the rest held
    assert 1024 <= hold["sample_output_bytes"] <= 1024 + 128, hold  # as a Struct: a little larger
    assert positive(hold["rss_per_execution_kb"]), hold


@pytest.mark.timeout(60)
def test_the_watchers_run_times_live_updates_on_every_stream() -> None:
    result = bench("--watchers", "30", "--watchers-per-execution", "10", "--watch-agent-latency-ms", "300")

    watchers = result["watchers"]
    assert (watchers["watchers"], watchers["executions"]) == (30, 3), watchers
    assert watchers["stream_ends"] == {"EXECUTION_STATE_COMPLETED": 30} and watchers["failed"] == 0, watchers
    # Opened within ~300 ms of submission: each stream sees most of its 12 events live.
    assert watchers["live_updates"] >= 30 * 6, watchers
    assert positive(watchers["update_p50_ms"]) and watchers["update_p99_ms"] >= watchers["update_p50_ms"], watchers


@pytest.mark.timeout(60)
def test_a_profiled_scale_run_writes_the_orchestrators_samples_and_their_hot_spots(tmp_path: Path) -> None:
    if _profile.py_spy() is None and not os.environ.get("CI"):
        pytest.skip("py-spy is not installed (a dev dependency: CI has it)")

    result = bench("--watchers", "20", "--watch-agent-latency-ms", "300", "--profile", str(tmp_path))

    profile = result["watchers"]["profile"]
    assert Path(profile["collapsed"]) == tmp_path / "watchers-gil.collapsed.txt", profile
    assert Path(profile["collapsed"]).stat().st_size > 0
    assert profile["samples"] > 0 and profile["self"] and profile["inclusive"], profile


@pytest.mark.timeout(60)
def test_the_recover_run_sees_every_execution_running_again_after_kill_9() -> None:
    result = bench("--recover", "20", "--recover-agent-latency", "30")

    recover = result["recover"]
    assert recover["running_before_kill"] == recover["running_again"] == 20 and recover["failed"] == 0, recover
    assert recover["active_after_restart"] == 20, recover
    assert 0 < recover["restart_to_serving_s"] <= recover["recovery_s"], recover


@pytest.mark.timeout(60)
def test_the_health_burst_run_polls_health_while_the_burst_is_submitted() -> None:
    result = bench("--health-during-burst", "300", "--burst-agent-latency", "1")

    burst = result["health_burst"]
    assert burst["answers"] == {"OK": 300} and burst["failed"] == 0, burst
    assert burst["polls_during"] >= 1 and burst["poll_errors"] == {}, burst
    assert positive(burst["health_p50_ms"]) and burst["health_p99_ms"] >= burst["health_p50_ms"], burst


def test_bad_arguments_are_refused_before_anything_starts() -> None:
    for args in (["--store", "mysql://x"], ["--workload", "W0", "--agent-latency", "1"], ["--n", "0"]):
        done = subprocess.run(
            [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 2 and "error" in done.stderr, (args, done.stderr)


def test_the_call_memory_bench_measures_calls_held_in_flight() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT), str(ROOT / "generated")))}
    done = subprocess.run(
        [sys.executable, "bench/call_memory.py", "--calls", "200", "--settle", "2", "--latency", "30"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["calls"] == 200 and ["grpc.enable_retries", 0] in figures["options"]
    assert figures["rss_held_mb"] >= figures["rss_before_mb"] > 0
    assert math.isfinite(figures["rss_per_call_kb"])
