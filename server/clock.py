"""The real clock: wall time in UTC and asyncio sleeping, plugged into the engine at the edge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime


class SystemClock:
    """The engine's Clock over the system's time."""

    def now(self) -> datetime:
        """Returns the current UTC time."""
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        """Sleeps until `when`."""
        delay = (when - datetime.now(UTC)).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

    def call_at(self, when: datetime, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Calls `callback` from the running loop at `when` (soon if it has passed)."""
        delay = (when - datetime.now(UTC)).total_seconds()
        return asyncio.get_running_loop().call_later(max(delay, 0.0), callback)
