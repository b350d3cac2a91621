"""The non-terminal execution states as index ranges, shared by the SQL stores' queries."""

from __future__ import annotations

import itertools

from server.store.base import TERMINAL_STATES


def unfinished_ranges(terminal: frozenset[int] = TERMINAL_STATES) -> list[str]:
    """One condition per gap between terminal states (``state < 4``, ``state > 6``, ...).

    Ranges, not ``state NOT IN (...)``: each range is an index range of the state index, so a
    query over unfinished executions reads only their rows.
    """
    runs: list[list[int]] = []
    for state in sorted(terminal):
        if runs and runs[-1][1] == state - 1:
            runs[-1][1] = state
        else:
            runs.append([state, state])
    ranges = [f"state < {runs[0][0]}"]
    ranges += [f"state > {low[1]} AND state < {high[0]}" for low, high in itertools.pairwise(runs)]
    ranges.append(f"state > {runs[-1][1]}")
    return ranges
