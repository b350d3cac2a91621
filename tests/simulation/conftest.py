"""Counts the simulation's crash points and prints them in the test summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class CrashTally:
    """Crash points tried, per scenario."""

    tried: Counter[str] = field(default_factory=Counter)
    crashed: int = 0
    violations: int = 0

    def add(self, scenario: str, *, crashed: bool, broken: bool) -> None:
        self.tried[scenario] += 1
        self.crashed += crashed
        self.violations += broken


_TALLY_KEY = pytest.StashKey[CrashTally]()


@pytest.fixture
def crash_tally(request: pytest.FixtureRequest) -> Iterator[CrashTally]:
    config = request.config
    if _TALLY_KEY not in config.stash:
        config.stash[_TALLY_KEY] = CrashTally()
    yield config.stash[_TALLY_KEY]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    tally = config.stash.get(_TALLY_KEY, None)
    if tally is None:
        return
    total = sum(tally.tried.values())
    terminalreporter.write_line(
        f"crash-point simulation: {total} crash points over {len(tally.tried)} scenarios "
        f"({tally.crashed} crashed and recovered), {tally.violations} invariant violations"
    )
