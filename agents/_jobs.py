"""JobDiscovery: relevance search over the bundled synthetic postings, with per-board quotas."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import grpc
from baton.v1 import common_pb2, job_discovery_pb2, job_discovery_pb2_grpc

from agents._faults import FaultState
from agents._runtime import (
    AgentError,
    AgentRuntime,
    invalid_argument,
    operation,
    quality,
    require_user_id,
)
from agents._vocabulary import normalize_skill, normalize_skills, title_tokens

#: Requests per hour each board's account allows (the seed's api_rate_limits).
BOARD_QUOTAS: MappingProxyType[str, int] = MappingProxyType(
    {"linkedin": 5_000, "indeed": 10_000, "glassdoor": 3_000, "ziprecruiter": 3_000}
)
#: Requests per hour of a board that BOARD_QUOTAS does not name.
DEFAULT_QUOTA = 1_000
#: Relevance points a posting gains when its seniority is the one a searched title names.
SENIORITY_BONUS = 1.5
#: Seconds after which every board's quota is whole again.
QUOTA_WINDOW = 3600.0
#: The postings a search returns when the request leaves ``limit`` unset.
DEFAULT_LIMIT = 20
#: The most postings a search may return.
MAX_LIMIT = 100

_WORDS = re.compile(r"[a-z0-9+#./-]+")
_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class _Indexed:
    """A posting with what relevance scoring reads, computed once at load."""

    posting: job_discovery_pb2.JobPosting
    skills: frozenset[str]
    title: str
    title_core: frozenset[str]
    words: frozenset[str]
    location: str
    posted_at: int


class JobCatalog:
    """The postings every agent of the fleet knows, by job_id."""

    def __init__(self, postings: list[job_discovery_pb2.JobPosting]) -> None:
        self._by_id = {p.job_id: p for p in postings}
        self._indexed = tuple(
            _Indexed(
                posting=p,
                skills=frozenset(normalize_skills(list(p.skills))),
                title=p.title.lower(),
                title_core=title_tokens(p.title),
                words=frozenset(_WORDS.findall(f"{p.title} {p.description}".lower())),
                location=p.location.lower(),
                posted_at=p.posted_at.seconds,
            )
            for p in postings
        )
        self.newest = max((p.posted_at.seconds for p in postings), default=0)
        self.sources = tuple(sorted({p.source for p in postings}))
        self.loaded_at = time.monotonic()

    @classmethod
    def load(cls, path: Path | None = None) -> JobCatalog:
        """Loads the postings of a jobs.json file; the bundled one by default."""
        if path is None:
            text = resources.files("agents").joinpath("data", "jobs.json").read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        postings = []
        for job in json.loads(text)["jobs"]:
            posted_at = datetime.fromisoformat(job.pop("posted_at").replace("Z", "+00:00"))
            posting = job_discovery_pb2.JobPosting(**job)
            posting.posted_at.FromDatetime(posted_at)
            postings.append(posting)
        return cls(postings)

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, job_id: str) -> job_discovery_pb2.JobPosting | None:
        """Returns the posting with `job_id`, or None."""
        return self._by_id.get(job_id)

    def search(
        self, request: job_discovery_pb2.SearchJobsRequest, sources: frozenset[str]
    ) -> list[tuple[float, _Indexed]]:
        """Returns the postings matching `request` on `sources`, most relevant first, with relevance 0-1."""
        skills = frozenset(normalize_skills(list(request.skills)))
        titles = [(title_tokens(t), _seniority_of(t)) for t in request.titles if t.strip()]
        keywords = [k.lower().strip() for k in request.keywords if k.strip()]
        location = request.location.strip().lower()
        remote_only = request.remote_only or location == "remote"
        if location == "remote":
            location = ""
        # The most a posting can score, to express relevance from 0 to 1.
        best = (
            3.0 * len(skills)
            + (4.0 + SENIORITY_BONUS if titles else 0.0)
            + 2.0 * len(keywords)
            + (1.0 if location else 0.0)
        )
        ranked: list[tuple[float, _Indexed]] = []
        for job in self._indexed:
            posting = job.posting
            if posting.source not in sources or (remote_only and not posting.remote):
                continue
            at_location = bool(location) and location in job.location
            if location and not at_location and not posting.remote:
                continue
            points = 3.0 * len(skills & job.skills)
            if titles:
                points += max(_title_points(core, seniority, job, posting.seniority) for core, seniority in titles)
            for keyword in keywords:
                if keyword in job.title or normalize_skill(keyword) in job.skills:
                    points += 2.0
                elif all(word in job.words for word in _WORDS.findall(keyword)):
                    points += 1.0
            if at_location:
                points += 1.0
            if best == 0.0:
                ranked.append((1.0, job))
            elif points > 0.0:
                ranked.append((points / best, job))
        ranked.sort(key=lambda item: (-item[0], -item[1].posted_at, item[1].posting.job_id))
        return ranked


def _seniority_of(title: str) -> str:
    words = set(title.lower().split())
    for seniority, spellings in (
        ("junior", {"junior", "jr", "jr."}),
        ("senior", {"senior", "sr", "sr."}),
        ("lead", {"lead", "principal", "staff"}),
    ):
        if words & spellings:
            return seniority
    return ""


def _title_points(core: frozenset[str], seniority: str, job: _Indexed, job_seniority: str) -> float:
    if not core:
        return 0.0
    overlap = len(core & job.title_core) / len(core | job.title_core)
    if overlap == 0.0:
        return 0.0
    return 4.0 * overlap + (SENIORITY_BONUS if seniority and seniority == job_seniority else 0.0)


class JobDiscoveryServicer(job_discovery_pb2_grpc.JobDiscoveryServicer):
    """Searches the catalog, spending one request of each searched board's hourly quota."""

    def __init__(self, catalog: JobCatalog, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = AgentRuntime("job_discovery", ("SearchJobs",))
        self._catalog = catalog
        self._clock = clock
        self._quota = self._full_quota()
        self._faults_applied: FaultState | None = None
        self._window_start = clock()
        self._searches = 0
        self._results = 0
        self._performance = 100.0

    @operation
    def SearchJobs(
        self, request: job_discovery_pb2.SearchJobsRequest, context: grpc.aio.ServicerContext
    ) -> job_discovery_pb2.SearchJobsResponse:
        """Returns the postings most relevant to the request."""
        require_user_id(request.user_id)
        if request.limit < 0 or request.limit > MAX_LIMIT:
            raise invalid_argument("limit", f"must be from 1 to {MAX_LIMIT}, got {request.limit}")
        limit = request.limit or DEFAULT_LIMIT
        boards = self._boards(list(request.sources))
        ranked = self._catalog.search(request, frozenset(boards))
        top = ranked[:limit]
        response = job_discovery_pb2.SearchJobsResponse(
            jobs=[job.posting for _, job in top],
            total_matches=len(ranked),
            sources_searched=boards,
            quality=self._quality(request, top),
        )
        self._searches += 1
        self._results += len(top)
        # An exponential average keeps search_performance current without a history.
        self._performance = 0.9 * self._performance + 0.1 * response.quality.score
        return response

    async def GetStatus(
        self, request: common_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.AgentStatus:
        """Returns the agent's status with each board's remaining quota."""
        self._refill()
        status = self.runtime.status(
            {
                "search_performance": round(self._performance, 1),
                "data_freshness": round((time.monotonic() - self._catalog.loaded_at) / 60.0, 1),
                "postings_indexed": len(self._catalog),
                "searches": self._searches,
                "mean_results": round(self._results / self._searches, 1) if self._searches else 0.0,
            }
        )
        status.api_rate_limits.update(self._quota)
        return status

    def _boards(self, requested: list[str]) -> list[str]:
        """Returns the boards to search, spending one request of each one's quota."""
        self._refill()
        known = self._catalog.sources
        wanted = list(dict.fromkeys(s.strip().lower() for s in requested if s.strip())) or list(known)
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise invalid_argument("sources", f"names unknown boards {', '.join(unknown)}; known: {', '.join(known)}")
        boards = [s for s in wanted if self._quota[s] > 0]
        if not boards:
            raise AgentError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the hourly quota of {', '.join(wanted)} is spent; try again within the hour",
            )
        for board in boards:
            self._quota[board] -= 1
        return boards

    def _refill(self) -> None:
        faults = self.runtime.faults
        if faults is not self._faults_applied:
            # A new fault configuration sets the quotas it names, once (FaultConfig.board_quota).
            self._faults_applied = faults
            for board, left in (faults.board_quota if faults is not None else {}).items():
                if board in self._quota:
                    self._quota[board] = left
        now = self._clock()
        if now - self._window_start >= QUOTA_WINDOW:
            self._window_start = now
            self._quota = self._full_quota()

    def _full_quota(self) -> dict[str, int]:
        return {board: BOARD_QUOTAS.get(board, DEFAULT_QUOTA) for board in self._catalog.sources}

    def _quality(
        self, request: job_discovery_pb2.SearchJobsRequest, top: list[tuple[float, _Indexed]]
    ) -> common_pb2.Quality:
        if not top:
            return quality(relevance=0.0, coverage=0.0, freshness=0.0)
        skills = set(normalize_skills(list(request.skills)))
        found = set().union(*(job.skills for _, job in top))
        coverage = 100.0 * len(skills & found) / len(skills) if skills else 100.0
        relevance = 100.0 * sum(score for score, _ in top) / len(top)
        age_days = sum(self._catalog.newest - job.posted_at for _, job in top) / len(top) / _SECONDS_PER_DAY
        return quality(relevance=relevance, coverage=coverage, freshness=100.0 - age_days)
