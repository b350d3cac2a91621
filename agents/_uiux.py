"""UiUx: records notifications to users in a bounded in-memory outbox."""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass

import grpc
from baton.v1 import common_pb2, ui_ux_pb2, ui_ux_pb2_grpc

from agents._runtime import AgentRuntime, invalid_argument, operation, quality, require_user_id

#: The channels a notification may go to; the first is the default.
CHANNELS = ("in_app", "email", "push")
#: The most notifications kept; older ones are forgotten first.
OUTBOX_SIZE = 1_000
#: The longest title plus message accepted, in characters.
MAX_TEXT = 10_000


@dataclass(frozen=True)
class Notification:
    """One delivered notification."""

    notification_id: str
    user_id: str
    channel: str
    title: str
    message: str
    sent_at_ns: int


class UiUxServicer(ui_ux_pb2_grpc.UiUxServicer):
    """Delivers notifications by keeping them in an outbox that clients would read."""

    def __init__(self) -> None:
        self.runtime = AgentRuntime("ui_ux", ("Notify",))
        self.outbox: deque[Notification] = deque(maxlen=OUTBOX_SIZE)
        self._ids = itertools.count(1)
        self._sent = 0

    @operation
    def Notify(self, request: ui_ux_pb2.NotifyRequest, context: grpc.aio.ServicerContext) -> ui_ux_pb2.NotifyResponse:
        """Records the notification and answers that it was delivered."""
        require_user_id(request.user_id)
        channel = request.channel.strip().lower() or CHANNELS[0]
        if channel not in CHANNELS:
            raise invalid_argument("channel", f"must be one of {', '.join(CHANNELS)}, got {request.channel!r}")
        if len(request.title) + len(request.message) > MAX_TEXT:
            raise invalid_argument("message", f"with its title is longer than {MAX_TEXT} characters")
        notification = Notification(
            notification_id=f"ntf-{next(self._ids):08d}",
            user_id=request.user_id,
            channel=channel,
            title=request.title,
            message=request.message,
            sent_at_ns=time.time_ns(),
        )
        self.outbox.append(notification)
        self._sent += 1
        # A notification without text reaches the user but tells them little.
        completeness = 100.0 if request.title or request.message else 50.0
        return ui_ux_pb2.NotifyResponse(
            notification_id=notification.notification_id,
            delivered=True,
            channel=channel,
            quality=quality(timeliness=100.0, completeness=completeness),
        )

    async def GetStatus(
        self, request: common_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.AgentStatus:
        """Returns the agent's status."""
        return self.runtime.status(
            {
                "user_sessions": len({n.user_id for n in self.outbox}),
                "notifications_sent": self._sent,
            }
        )
