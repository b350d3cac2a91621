"""Analytics: counts users' events cheaply and derives insights from match scores and skill gaps."""

from __future__ import annotations

import math
import statistics

import grpc
from baton.v1 import analytics_pb2, analytics_pb2_grpc, common_pb2

from agents._runtime import AgentRuntime, invalid_argument, operation, quality, require_user_id

#: The most users whose counts are kept; the least recently first-seen are forgotten first.
MAX_USERS = 100_000
#: A match score at or above this counts as a strong match.
STRONG_MATCH = 70.0
#: A mean match score below this calls for a broader search.
WEAK_MEAN = 50.0


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServicer):
    """Counts events per user in memory and turns scores into insights."""

    def __init__(self) -> None:
        self.runtime = AgentRuntime("analytics", ("RecordEvents", "GetInsights"))
        self._events: dict[str, int] = {}
        self._total = 0
        # RecordEvents is the hot path of the benchmark: its quality never changes, so it is built once.
        self._recorded_quality = quality(completeness=100.0, timeliness=100.0)

    @operation
    def RecordEvents(
        self, request: analytics_pb2.RecordEventsRequest, context: grpc.aio.ServicerContext
    ) -> analytics_pb2.RecordEventsResponse:
        """Counts the events for the user."""
        user_id = request.user_id
        require_user_id(user_id)
        recorded = len(request.events)
        events = self._events
        total = events.get(user_id)
        if total is None:
            if len(events) >= MAX_USERS:
                # Dicts keep insertion order: the first key is the user seen longest ago.
                del events[next(iter(events))]
            total = 0
        total += recorded
        events[user_id] = total
        self._total += recorded
        return analytics_pb2.RecordEventsResponse(
            recorded=recorded, total_for_user=total, quality=self._recorded_quality
        )

    @operation
    def GetInsights(
        self, request: analytics_pb2.GetInsightsRequest, context: grpc.aio.ServicerContext
    ) -> analytics_pb2.GetInsightsResponse:
        """Returns insights and recommendations from the user's scores, gaps and events."""
        require_user_id(request.user_id)
        scores = list(request.match_scores)
        for index, score in enumerate(scores):
            if not 0.0 <= score <= 100.0 or math.isnan(score):
                raise invalid_argument(f"match_scores[{index}]", f"must be from 0 to 100, got {score}")
        gaps = list(dict.fromkeys(g.strip().lower() for g in request.skill_gaps if g.strip()))
        insights = [
            analytics_pb2.Insight(
                name="events_recorded",
                value=float(self._events.get(request.user_id, 0)),
                explanation="Journey events recorded for the user so far.",
            ),
            analytics_pb2.Insight(
                name="skill_gaps",
                value=float(len(gaps)),
                explanation="Distinct skills that the user's matches ask for and the user lacks.",
            ),
        ]
        recommendations = []
        if scores:
            mean = statistics.fmean(scores)
            strong = sum(1 for s in scores if s >= STRONG_MATCH)
            insights += [
                analytics_pb2.Insight(
                    name="mean_match_score", value=round(mean, 1), explanation="The mean fit of the scored jobs."
                ),
                analytics_pb2.Insight(
                    name="max_match_score", value=max(scores), explanation="The fit of the best job found."
                ),
                analytics_pb2.Insight(
                    name="strong_matches",
                    value=float(strong),
                    explanation=f"Jobs scoring {STRONG_MATCH:.0f} or more.",
                ),
            ]
            if strong:
                recommendations.append(f"Apply to the {strong} strong matches first; they fit you best.")
            if mean < WEAK_MEAN:
                recommendations.append(
                    "Broaden the search: add related titles or remote jobs, since most matches fit weakly."
                )
        else:
            recommendations.append("Run a job search and score the results to get match insights.")
        if gaps:
            recommendations.append(f"Learn or highlight {', '.join(gaps[:3])}: your matches ask for them most.")
        # Confidence grows with the evidence: ten scores or more make a full sample.
        confidence = min(100.0, 10.0 * len(scores)) if scores else 20.0
        return analytics_pb2.GetInsightsResponse(
            insights=insights,
            recommendations=recommendations,
            quality=quality(accuracy=confidence, completeness=100.0 if scores and gaps else 60.0),
        )

    async def GetStatus(
        self, request: common_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.AgentStatus:
        """Returns the agent's status."""
        return self.runtime.status(
            {
                "data_processing_lag": 0.0,
                "insight_accuracy": 100.0 - self.runtime.error_rate,
                "storage_utilization": round(100.0 * len(self._events) / MAX_USERS, 2),
                "events_recorded": self._total,
                "users_tracked": len(self._events),
            }
        )
