"""MatchingIntelligence: scores postings against a candidate by skills, title and seniority."""

from __future__ import annotations

import math
from collections import Counter

import grpc
from baton.v1 import common_pb2, job_discovery_pb2, matching_intelligence_pb2, matching_intelligence_pb2_grpc

from agents._runtime import AgentRuntime, invalid_argument, operation, quality, require_user_id
from agents._vocabulary import normalize_skills, title_tokens

#: Weights of the three parts of a match score; they sum to 1.
SKILL_WEIGHT = 0.6
TITLE_WEIGHT = 0.25
SENIORITY_WEIGHT = 0.15
#: The most postings one request may score.
MAX_JOBS = 1_000
#: The most skill gaps a response lists.
MAX_GAPS = 10

# Seniority → the years of experience it usually asks for (inclusive bounds).
_SENIORITY_YEARS: dict[str, tuple[float, float]] = {
    "junior": (0.0, 2.0),
    "mid": (2.0, 5.0),
    "senior": (5.0, 10.0),
    "lead": (8.0, 40.0),
}


def seniority_fit(years: float, seniority: str) -> float:
    """Returns how well `years` of experience fit a posting's seniority, from 0 to 1.

    Under-qualification costs a third per missing year; over-qualification costs less, a tenth
    per extra year, since it rarely disqualifies. An unknown seniority fits half-way.
    """
    bounds = _SENIORITY_YEARS.get(seniority.lower())
    if bounds is None:
        return 0.5
    low, high = bounds
    if years < low:
        return max(0.0, 1.0 - (low - years) / 3.0)
    if years > high:
        return max(0.0, 1.0 - (years - high) / 10.0)
    return 1.0


def title_similarity(candidate_titles: list[frozenset[str]], posting_title: str) -> float:
    """Returns the best word overlap (Jaccard) of the candidate's titles with a posting's, from 0 to 1."""
    posting = title_tokens(posting_title)
    best = 0.0
    for title in candidate_titles:
        union = title | posting
        if union:
            best = max(best, len(title & posting) / len(union))
    return best


class MatchingIntelligenceServicer(matching_intelligence_pb2_grpc.MatchingIntelligenceServicer):
    """Scores postings for a candidate."""

    def __init__(self) -> None:
        self.runtime = AgentRuntime("matching_intelligence", ("ScoreMatches",))
        self._scored = 0
        self._performance = 100.0
        self._confidence = 100.0

    @operation
    def ScoreMatches(
        self, request: matching_intelligence_pb2.ScoreMatchesRequest, context: grpc.aio.ServicerContext
    ) -> matching_intelligence_pb2.ScoreMatchesResponse:
        """Returns the postings scored against the candidate, best first."""
        require_user_id(request.user_id)
        if request.top_n < 0:
            raise invalid_argument("top_n", "must not be negative")
        if not 0.0 <= request.min_score <= 100.0 or math.isnan(request.min_score):
            raise invalid_argument("min_score", f"must be from 0 to 100, got {request.min_score}")
        if request.years_experience < 0 or math.isnan(request.years_experience):
            raise invalid_argument("years_experience", "must not be negative")
        if len(request.jobs) > MAX_JOBS:
            raise invalid_argument("jobs", f"has {len(request.jobs)} postings; at most {MAX_JOBS} are allowed")
        skills = set(normalize_skills(list(request.skills)))
        titles = [title_tokens(t) for t in request.titles if t.strip()]
        gaps: Counter[str] = Counter()
        matches = []
        for job in request.jobs:
            match = self._score(job, skills, titles, request.years_experience)
            gaps.update(match.missing_skills)
            matches.append(match)
        # sorted() is stable, so equal scores keep the request's order.
        matches.sort(key=lambda m: -m.score)
        kept = [m for m in matches if m.score >= request.min_score]
        if request.top_n:
            kept = kept[: request.top_n]
        response = matching_intelligence_pb2.ScoreMatchesResponse(
            matches=kept,
            # Counter.most_common keeps first-seen order among equal counts.
            skill_gaps=[skill for skill, _ in gaps.most_common(MAX_GAPS)],
            quality=self._quality(request, skills, titles),
        )
        self._scored += len(request.jobs)
        self._performance = 0.9 * self._performance + 0.1 * response.quality.score
        self._confidence = 0.9 * self._confidence + 0.1 * response.quality.metrics["confidence"]
        return response

    async def GetStatus(
        self, request: common_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.AgentStatus:
        """Returns the agent's status."""
        status = self.runtime.status()
        status.metrics.update(
            {
                "model_performance": round(self._performance, 1),
                "prediction_confidence": round(self._confidence, 1),
                "processing_capacity": round(100.0 - status.load, 1),
                "postings_scored": self._scored,
            }
        )
        return status

    @staticmethod
    def _score(
        job: job_discovery_pb2.JobPosting, skills: set[str], titles: list[frozenset[str]], years: float
    ) -> matching_intelligence_pb2.Match:
        wanted = normalize_skills(list(job.skills))
        matched = [s for s in wanted if s in skills]
        missing = [s for s in wanted if s not in skills]
        # A posting that names no skills says nothing about fit by skills: count it half-way.
        skill_part = len(matched) / len(wanted) if wanted else 0.5
        score = 100.0 * (
            SKILL_WEIGHT * skill_part
            + TITLE_WEIGHT * title_similarity(titles, job.title)
            + SENIORITY_WEIGHT * seniority_fit(years, job.seniority)
        )
        return matching_intelligence_pb2.Match(
            job_id=job.job_id,
            title=job.title,
            company=job.company,
            score=round(score, 1),
            matched_skills=matched,
            missing_skills=missing,
        )

    @staticmethod
    def _quality(
        request: matching_intelligence_pb2.ScoreMatchesRequest, skills: set[str], titles: list[frozenset[str]]
    ) -> common_pb2.Quality:
        # Confidence is how much of the candidate the request describes; coverage is how much of
        # the postings can be judged (a posting without skills can only be half judged).
        confidence = 50.0 * bool(skills) + 30.0 * bool(titles) + 20.0 * (request.years_experience > 0)
        jobs = request.jobs
        coverage = 100.0 * sum(1 for j in jobs if j.skills) / len(jobs) if jobs else 100.0
        return quality(confidence=confidence, coverage=coverage)
