"""Job boards at run time: suspended accounts are not used, limited or spent ones are paced.

The agents report the boards (server.health polls them): job_discovery its `api_rate_limits`
(board → requests left in its quota window) and automation its `account_health` (board → active,
limited, suspended). `BoardGuard.update` takes each new report.

Rules (the conformance table is tests/unit/test_boards.py):
1. **Which boards a call is for.** An automation call with `job_ids` acts through the account of
   each job's board; a job_discovery call with `sources` spends a request of each named board's
   quota. A job's board is learned from the postings job_discovery answers (SearchJobs replies,
   never a request: a plan's payload is a user's to write, and one user must not move another's
   jobs to another board), in a bounded table (`MAX_JOBS_KNOWN`, oldest forgotten first). A job
   whose board is not known (after a restart, say, or searched on another replica) is sent: the
   automation agent refuses a suspended board itself (FAILED_PRECONDITION).
2. **Suspended: not sent.** An automation call's jobs on a suspended board are taken out of its
   request before it is sent; when none is left the call is refused unsent with
   ``BOARD_SUSPENDED`` (not retryable: the step's fallback decides). Withdrawals name
   applications, not jobs, so compensations always go through.
3. **Limited or spent: paced.** A call for a board whose account is limited, or whose quota is
   spent (0 left), takes a token of that board's bucket first: a limited board gets
   ``limited_share`` of the pace that would spend its remaining quota evenly over the quota
   window, never less than ``min_rate``; a spent board gets ``min_rate``. Burst 1. The buckets
   are re-derived when a report changes a board's state or quota by more than a tenth.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from baton.v1 import common_pb2

from agents_clients.limiters import TokenBucket

BOARD_SUSPENDED = "BOARD_SUSPENDED"
"""The error type of an automation call whose every job is on a suspended board, refused unsent."""
ACCOUNT_AGENT = "automation"
"""The agent that acts through the boards' accounts."""
SEARCH_AGENT = "job_discovery"
"""The agent whose searches spend the boards' quotas."""
MAX_JOBS_KNOWN = 100_000
"""Jobs whose board the guard remembers (about 100 bytes each)."""

LIMITED = common_pb2.ACCOUNT_HEALTH_LIMITED
SUSPENDED = common_pb2.ACCOUNT_HEALTH_SUSPENDED


@dataclass(frozen=True)
class BoardLimitsConfig:
    """How the boards' reported quotas and account health become run-time limits (rule 3)."""

    quota_window: float = 3600.0
    """Seconds in which a board's quota (job_discovery's api_rate_limits) is whole again, 1 to
    86,400. Default 3600 (the reference agent's hourly quotas)."""
    limited_share: float = 0.1
    """Share, above 0 to 1, of the even pace of its remaining quota that a limited board's calls
    get. Default 0.1 (5,000 requests left in an hour: one call every 7.2 s)."""
    min_rate: float = 1.0 / 60.0
    """Calls per second a limited or spent board always gets, above 0 to 1,000. Default one a minute."""

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("quota_window", self.quota_window, 1.0, 86_400.0),
            ("limited_share", self.limited_share, 0.0, 1.0),
            ("min_rate", self.min_rate, 0.0, 1000.0),
        ):
            if not (math.isfinite(value) and low <= value <= high) or value == 0.0:
                raise ValueError(f"boards.{name}: expected a value above {low:g} up to {high:g}, got {value}")


@dataclass
class BoardState:
    """What the agents last reported of one board, and the pace derived from it."""

    health: int = common_pb2.ACCOUNT_HEALTH_UNSPECIFIED
    """The automation account's AccountHealth."""
    remaining: int | None = None
    """Requests left in the quota window; None when not reported."""
    bucket: TokenBucket | None = field(default=None, repr=False)
    """The board's pace (rule 3); None when the board is not paced."""

    @property
    def word(self) -> str:
        """active, limited, suspended or unknown."""
        name: str = common_pb2.AccountHealth.Name(self.health)
        return name.removeprefix("ACCOUNT_HEALTH_").lower().replace("unspecified", "unknown")


@dataclass(frozen=True, slots=True)
class BoardCall:
    """What the guard decided about one call."""

    payload: dict[str, Any]
    """The request to send (jobs on suspended boards taken out)."""
    paced: tuple[str, ...]
    """Boards whose bucket the call must take a token of, in order."""
    dropped: tuple[tuple[str, str], ...] = ()
    """(job_id, board) of the jobs taken out because their board is suspended."""


class BoardRefusal(Exception):
    """Every job of an automation call is on a suspended board (rule 2)."""


class BoardGuard:
    """The run-time board rules (module docstring) over the latest reports."""

    def __init__(
        self,
        config: BoardLimitsConfig | None = None,
        *,
        max_waiting: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or BoardLimitsConfig()
        self.max_waiting = max_waiting
        self._clock = clock
        self.boards: dict[str, BoardState] = {}
        self._jobs: OrderedDict[str, str] = OrderedDict()
        self.dropped = 0
        """Jobs taken out of automation calls because their board was suspended."""
        self.refused = 0
        """Automation calls refused unsent because every job was on a suspended board."""

    # ---- reports ---------------------------------------------------------------------------------

    def update(self, account_health: Mapping[str, int], api_rate_limits: Mapping[str, int]) -> None:
        """Takes the agents' latest report of the boards (rule 3)."""
        for board in {*account_health, *api_rate_limits}:
            state = self.boards.setdefault(board, BoardState())
            health = account_health.get(board, state.health)
            remaining = api_rate_limits.get(board, state.remaining)
            rate = self.rate(health, remaining)
            old_rate = state.bucket.rate if state.bucket is not None else None
            state.health, state.remaining = health, remaining
            if rate is None:
                state.bucket = None
            elif old_rate is None or abs(rate - old_rate) > 0.1 * old_rate:
                state.bucket = TokenBucket(rate, 1, self.max_waiting, clock=self._clock)

    def update_from(self, statuses: Mapping[str, common_pb2.AgentStatus]) -> None:
        """Takes the boards from the agents' statuses: automation's account_health and
        job_discovery's api_rate_limits (an agent that did not answer leaves them as they were)."""
        account = statuses.get(ACCOUNT_AGENT)
        search = statuses.get(SEARCH_AGENT)
        self.update(
            dict(account.account_health) if account is not None else {},
            dict(search.api_rate_limits) if search is not None else {},
        )

    def rate(self, health: int, remaining: int | None) -> float | None:
        """Calls per second a board gets (rule 3); None when it is not paced."""
        config = self.config
        if health == LIMITED:
            even = (remaining or 0) / config.quota_window
            return max(config.min_rate, config.limited_share * even)
        if remaining == 0:
            return config.min_rate
        return None

    def learn(self, jobs: Iterable[Mapping[str, Any]]) -> None:
        """Remembers the board of each posting (rule 1)."""
        known = self._jobs
        for job in jobs:
            job_id, board = job.get("job_id"), job.get("source")
            if isinstance(job_id, str) and isinstance(board, str) and job_id and board:
                known[job_id] = board
                known.move_to_end(job_id)
        while len(known) > MAX_JOBS_KNOWN:
            known.popitem(last=False)

    def board_of(self, job_id: str) -> str | None:
        """The board of a job seen in a posting; None when not known."""
        return self._jobs.get(job_id)

    # ---- calls -----------------------------------------------------------------------------------

    def check(self, agent: str, payload: dict[str, Any]) -> BoardCall:
        """Applies rules 1-3 to a call's request.

        Raises:
            BoardRefusal: every job of an automation call is on a suspended board.
        """
        if not self.boards:
            return BoardCall(payload, ())
        if agent == ACCOUNT_AGENT and isinstance(payload.get("job_ids"), list):
            return self._account_call(payload)
        if agent == SEARCH_AGENT and isinstance(payload.get("sources"), list):
            boards = [b.strip().lower() for b in payload["sources"] if isinstance(b, str)]
            return BoardCall(payload, self._paced(boards))
        return BoardCall(payload, ())

    def _account_call(self, payload: dict[str, Any]) -> BoardCall:
        kept: list[Any] = []
        dropped: list[tuple[str, str]] = []
        boards: list[str] = []
        for job_id in payload["job_ids"]:
            board = self.board_of(job_id) if isinstance(job_id, str) else None
            state = self.boards.get(board) if board is not None else None
            if board is not None and state is not None and state.health == SUSPENDED:
                dropped.append((job_id, board))
                continue
            kept.append(job_id)
            if board is not None:
                boards.append(board)
        if not dropped:
            return BoardCall(payload, self._paced(boards))
        if not kept:
            self.refused += 1
            names = sorted({board for _, board in dropped})
            raise BoardRefusal(
                f"the account on {', '.join(names)} is suspended: job {', '.join(j for j, _ in dropped)} not submitted"
            )
        self.dropped += len(dropped)
        return BoardCall({**payload, "job_ids": kept}, self._paced(boards), tuple(dropped))

    def _paced(self, boards: Iterable[str]) -> tuple[str, ...]:
        paced = []
        for board in dict.fromkeys(boards):
            state = self.boards.get(board)
            if state is not None and state.bucket is not None:
                paced.append(board)
        return tuple(paced)

    def bucket(self, board: str) -> TokenBucket | None:
        """The board's bucket now (None when it is not paced)."""
        state = self.boards.get(board)
        return state.bucket if state is not None else None
