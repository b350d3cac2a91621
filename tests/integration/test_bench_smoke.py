"""The benchmark still runs end to end: bench/run.py's code path on a tiny N, one repetition.

Not a timed test: it never asserts a speed, only that every workflow completed and that every
figure the report needs came out as a positive number.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from bench.run import Settings, markdown, run_all
from tests.integration.pg_support import ADMIN_URL, fresh_database


@pytest.mark.timeout(60)
def test_the_benchmark_runs_both_systems_on_both_workloads_and_every_workflow_completes(tmp_path: Path) -> None:
    report = run_all(Settings(repeat=1, n0=10, n10=10, warmup=2), results_dir=tmp_path, say=lambda _: None)

    assert report.failures() == 0, report.runs
    assert {(r["workload"], r["system"]) for r in report.runs} == {
        (w, s) for w in ("W0", "W10") for s in ("floor", "baton")
    }
    for run in report.runs:
        assert run["completed"] == run["n"] == 10, run
        for figure in ("throughput_wf_s", "p50_ms", "p99_ms"):
            assert run[figure] > 0 and math.isfinite(run[figure]), (figure, run)
        if run["system"] == "baton":
            assert run["orchestrator_peak_rss_kb"] > 0, run
    assert report.headline["w0_throughput_ratio"] > 0
    assert math.isfinite(report.headline["w10_overhead_ms_per_step"])
    assert len(list(tmp_path.glob("bench-*.json"))) == 1
    assert "| W0" in markdown(report) and "| W10" in markdown(report)


@pytest.mark.timeout(90)
async def test_the_benchmark_runs_baton_on_postgres_beside_sqlite_and_every_workflow_completes(
    tmp_path: Path,
) -> None:
    async with fresh_database():
        pass  # skips here when no PostgreSQL server answers (fails in CI)
    settings = Settings(repeat=1, n0=10, warmup=2, workloads=("W0",), stores=("sqlite", ADMIN_URL))

    # run_all makes and drops each run's database with asyncio.run, so it runs off this loop.
    report = await asyncio.to_thread(run_all, settings, tmp_path, lambda _: None)

    assert report.failures() == 0, report.runs
    assert sorted(r["system"] for r in report.runs) == ["baton", "baton-pg", "floor"]
    assert all(run["completed"] == 10 for run in report.runs), report.runs
    assert report.headline["w0_postgres_throughput_ratio"] > 0
    assert "| baton-pg |" in markdown(report)
