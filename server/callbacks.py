"""Delivers an execution's terminal status to its callback_url (POST, JSON), with retries."""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request

from google.protobuf import json_format

from server.engine import ExecutionState, render

logger = logging.getLogger(__name__)


class CallbackNotifier:
    """A terminal listener that POSTs the final status to the execution's callback_url."""

    def __init__(self, attempts: int = 3, timeout: float = 5.0) -> None:
        self.attempts = attempts
        self.timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    def on_terminal(self, state: ExecutionState) -> None:
        """Schedules the delivery (never blocks the engine)."""
        url = state.started.callback_url
        if not url:
            return
        body = json_format.MessageToJson(render(state), preserving_proto_field_name=True).encode()
        task = asyncio.get_running_loop().create_task(self._deliver(state.execution_id, url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, execution_id: str, url: str, body: bytes) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                await asyncio.to_thread(self._post, url, body)
                return
            except (urllib.error.URLError, OSError) as exc:
                logger.warning(
                    "callback of execution %s to %s failed (attempt %d): %s", execution_id, url, attempt, exc
                )
                await asyncio.sleep(2.0**attempt)

    def _post(self, url: str, body: bytes) -> None:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()
