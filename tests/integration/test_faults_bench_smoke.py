"""bench/faults.py still runs end to end on a tiny N (never a speed: only outcomes and the ledger)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_the_faults_benchmark_runs_and_reports_every_execution_and_no_application_twice() -> None:
    done = subprocess.run(
        [sys.executable, "bench/faults.py", "--n", "6", "--concurrency", "3", "--error-rate", "0.2", "--seed", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
        check=True,
    )
    figures = json.loads(done.stdout.splitlines()[0])
    assert sum(figures["outcomes"].values()) == 6
    shares = figures["completed_pct"] + figures["circuit_open_pct"] + figures["failed_otherwise_pct"]
    assert shares == pytest.approx(100, abs=0.2)  # each rounded to 0.1
    assert figures["applied_twice"] == 0 and figures["applications"] > 0
    assert done.stdout.splitlines()[1].startswith("| ")
