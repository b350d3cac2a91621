"""Estimates and cost without I/O: the sketch's accuracy, the recorder's batching, the cost model,
the planner's sources and adaptive timeouts, and the engine's attempt durations and call counts."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest
from baton.v1 import execution_pb2, journey_pb2, plan_pb2

from server.config import ConfigError, EstimatesConfig
from server.engine.calls import CallTally, cost_of, tally_call
from server.estimates import CostModel, DurationRecorder, DurationSketch, SketchFormatError, price_plan
from server.estimates._recorder import merge_encoded
from server.planner import Planner, RecordedDurations
from server.store._durations import SketchMerge, SketchRow
from tests.unit.engine_support import Harness, plan, step
from tests.unit.fakes import START, FakeClock, reply, unavailable

E = execution_pb2
QUANTILES = (0.5, 0.9, 0.95, 0.99)


def _exact(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


# ---- the sketch ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "draw",
    [
        lambda r: r.uniform(0.05, 2.0),
        lambda r: r.expovariate(1 / 0.3),
        lambda r: r.lognormvariate(-1.0, 1.2),
        lambda r: 0.25,  # a constant: every quantile is the value itself
    ],
    ids=["uniform", "exponential", "lognormal", "constant"],
)
def test_the_sketch_keeps_every_quantile_within_its_relative_accuracy(draw: object) -> None:
    rng = random.Random(14)
    values = [draw(rng) for _ in range(20_000)]  # type: ignore[operator]
    sketch = DurationSketch()
    for value in values:
        sketch.add(value)
    assert sketch.count == len(values)
    assert sketch.sum == pytest.approx(sum(values))
    for q in QUANTILES:
        estimate = sketch.quantile(q)
        assert estimate is not None
        # DDSketch's guarantee is 1% of the value at the quantile's rank; ranks of neighbours
        # differ by one sample, so compare with the exact quantile at 1% plus a hair.
        assert estimate == pytest.approx(_exact(values, q), rel=0.0101), q


def test_a_sketch_read_back_from_its_bytes_answers_the_same_and_merges_exactly() -> None:
    rng = random.Random(3)
    first, second, both = DurationSketch(), DurationSketch(), DurationSketch()
    for index in range(5000):
        value = rng.lognormvariate(0, 1)
        (first if index % 2 else second).add(value)
        both.add(value)
    encoded = first.to_bytes()
    assert len(encoded) < 8000  # compact: buckets, not samples
    copy = DurationSketch.from_bytes(encoded)
    assert [copy.quantile(q) for q in QUANTILES] == [first.quantile(q) for q in QUANTILES]
    assert (copy.count, copy.min, copy.max) == (first.count, first.min, first.max)
    copy.merge(second)
    assert [copy.quantile(q) for q in QUANTILES] == [both.quantile(q) for q in QUANTILES]
    assert copy.count == both.count == 5000


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"v": 2}',
        b'{"v":1,"alpha":0.05,"n":0,"sum":0,"min":0,"max":0,"b":[]}',
        b'{"v":1,"alpha":0.01,"n":5,"sum":1,"min":0,"max":1,"b":[[3,1]]}',
        b'{"v":1,"alpha":0.01,"n":1,"sum":1,"min":0,"max":1,"b":[["x",1]]}',
    ],
)
def test_bytes_that_are_not_a_sketch_are_refused(data: bytes) -> None:
    with pytest.raises(SketchFormatError):
        DurationSketch.from_bytes(data)


def test_an_empty_sketch_has_no_quantiles_and_bad_durations_are_ignored() -> None:
    sketch = DurationSketch()
    for bad in (-1.0, math.nan, math.inf):
        sketch.add(bad)
    assert sketch.count == 0
    assert sketch.quantile(0.5) is None
    sketch.add(0.0)
    assert sketch.quantile(0.5) == 0.0


# ---- the recorder ---------------------------------------------------------------------------------


class MemorySketches:
    """A DurationStore in memory that counts its writes (what the real ones do, minus SQL)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], bytes] = {}
        self.writes = 0
        self.fail = False

    async def load_duration_sketches(self) -> list[SketchRow]:
        return [SketchRow(a, o, DurationSketch.from_bytes(b).count, b) for (a, o), b in sorted(self.rows.items())]

    async def merge_duration_sketches(
        self, deltas: Sequence[SketchRow], merge: SketchMerge, now: datetime
    ) -> list[SketchRow]:
        if self.fail:
            raise OSError("disk full")
        self.writes += 1
        merged = []
        for delta in deltas:
            data, samples = merge(self.rows.get((delta.agent, delta.operation)), delta.sketch)
            self.rows[(delta.agent, delta.operation)] = data
            merged.append(SketchRow(delta.agent, delta.operation, samples, data))
        return merged


async def test_recording_writes_nothing_until_a_flush_writes_every_operation_at_once() -> None:
    store = MemorySketches()
    recorder = DurationRecorder(store, FakeClock(), min_samples=3)
    for seconds in (0.1, 0.2, 0.3):
        recorder.record("analytics", "RecordEvents", seconds)
    recorder.record("ui_ux", "Notify", 1.0)
    assert store.writes == 0
    assert await recorder.flush() == 2
    assert store.writes == 1
    assert await recorder.flush() == 0  # nothing new: no write
    assert store.writes == 1
    estimate = recorder.estimate("analytics", "RecordEvents")
    assert estimate is not None and estimate.enough and estimate.samples == 3
    assert estimate.p50 == pytest.approx(0.2, rel=0.011)
    notify = recorder.estimate("ui_ux", "Notify")
    assert notify is not None and not notify.enough and notify.samples == 1
    assert recorder.estimate("analytics", "Unknown") is None


async def test_a_new_recorder_reads_what_the_last_one_flushed_and_two_recorders_add_up() -> None:
    store = MemorySketches()
    first, second = DurationRecorder(store, FakeClock()), DurationRecorder(store, FakeClock())
    for index in range(30):
        first.record("analytics", "RecordEvents", 0.1 + index / 1000)
        second.record("analytics", "RecordEvents", 0.5)
    await first.flush()
    await second.flush()  # a replica's flush merges into the row, it does not overwrite it
    third = DurationRecorder(store, FakeClock())
    assert await third.load() == 1
    stats = third.stats("analytics", "RecordEvents")
    assert stats is not None and stats.samples == 60
    assert second.stats("analytics", "RecordEvents") == stats  # its totals took in the other's samples


async def test_a_failed_flush_keeps_its_samples_for_the_next() -> None:
    store = MemorySketches()
    recorder = DurationRecorder(store, FakeClock())
    recorder.record("analytics", "RecordEvents", 0.1)
    store.fail = True
    with pytest.raises(OSError):
        await recorder.flush()
    recorder.record("analytics", "RecordEvents", 0.2)
    store.fail = False
    await recorder.close()
    assert DurationSketch.from_bytes(store.rows[("analytics", "RecordEvents")]).count == 2


def test_an_unreadable_stored_sketch_starts_afresh_instead_of_failing() -> None:
    delta = DurationSketch()
    delta.add(0.3)
    data, samples = merge_encoded(b"garbage", delta.to_bytes())
    assert samples == 1 and DurationSketch.from_bytes(data).count == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_samples": 0}, "estimate_min_samples"),
        ({"flush_interval": 0.0}, "estimate_flush"),
        ({"timeout_factor": 0.5}, "adaptive_timeouts"),
        ({"timeout_factor": 1000.0}, "adaptive_timeouts"),
    ],
)
def test_estimate_settings_out_of_range_name_their_flag(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EstimatesConfig(**fields)  # type: ignore[arg-type]


# ---- the cost model -------------------------------------------------------------------------------


def test_the_built_in_cost_model_prices_an_operation_by_operation_then_agent_then_default() -> None:
    costs = CostModel.load()
    assert costs.unit_cost("document_intelligence", "AnalyzeDocument") == 3.0
    assert costs.unit_cost("job_discovery", "GetStatus") == 0.0
    model = CostModel.from_mapping({"default": 2, "operations": {"analytics.RecordEvents": 0.5}})
    assert model.unit_cost("analytics", "RecordEvents") == 0.5
    assert model.unit_cost("analytics", "GetStatus") == 2.0


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"defualt": 1}, "defualt"),
        ({"default": -1}, "default"),
        ({"default": "cheap"}, "default"),
        ({"default": True}, "default"),
        ({"default": math.inf}, "default"),
        ({"agents": {"nobody": 1}}, "agents.nobody"),
        ({"operations": {"analytics.Nope": 1}}, "operations.analytics.Nope"),
        ({"operations": {"analytics": 1}}, "operations.analytics"),
        ({"agents": [1, 2]}, "agents"),
        ([1, 2], "mapping"),
    ],
)
def test_a_bad_cost_model_is_a_config_error_naming_the_key(document: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        CostModel.from_mapping(document)


def test_an_unreadable_cost_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        CostModel.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("default: [")
    with pytest.raises(ConfigError, match="cannot read"):
        CostModel.load(tmp_path / "bad.yaml")


def test_a_priced_plan_carries_the_price_of_every_call_it_may_make() -> None:
    p = plan(step("A", alternative=("ui_ux", "Notify")))
    p.workflow_steps[0].compensation.agent = "automation"
    p.workflow_steps[0].compensation.operation = "WithdrawApplication"
    p.unit_costs["made.Up"] = 99.0
    price_plan(p, CostModel.from_mapping({"default": 1, "agents": {"ui_ux": 0.25}}))
    assert dict(p.unit_costs) == {
        "analytics.RecordEvents": 1.0,
        "ui_ux.Notify": 0.25,
        "automation.WithdrawApplication": 1.0,
    }


# ---- counting calls ---------------------------------------------------------------------------


def test_calls_count_every_attempt_sent_and_not_those_never_sent() -> None:
    calls: dict[tuple[str, str], CallTally] = {}
    latest: dict[tuple[str, int, bool], tuple[str, str, int]] = {}

    def started(attempt: int) -> None:
        body = E.StepStarted(step_id="A", attempt=attempt, agent="analytics", operation="RecordEvents")
        tally_call(calls, latest, "step_started", body)

    def failed(attempt: int, error: str) -> None:
        tally_call(
            calls, latest, "step_attempt_failed", E.StepAttemptFailed(step_id="A", attempt=attempt, error_type=error)
        )

    started(1)
    failed(1, "UNAVAILABLE")
    started(2)
    failed(2, "CIRCUIT_OPEN")  # refused by the breaker: nothing reached the agent
    started(3)
    assert calls == {("analytics", "RecordEvents"): CallTally(calls=2, retries=1)}
    assert cost_of(calls, {"analytics.RecordEvents": 1.5}) == 3.0


async def test_the_engine_reports_each_successful_step_attempts_duration_and_counts_retries_in_the_cost() -> None:
    harness = Harness(latency=2.5)
    seen: list[tuple[str, str, float]] = []
    harness.engine.add_attempt_listener(lambda agent, op, seconds: seen.append((agent, op, seconds)))
    harness.caller.script("analytics", "RecordEvents", unavailable(), unavailable(), reply({"ok": True}))
    p = plan(step("A", retries=3), step("B", "A", agent="ui_ux", operation="Notify"), initial_backoff=0.01)
    price_plan(p, CostModel.from_mapping({"default": 1.0, "agents": {"analytics": 2.0}}))
    state = await harness.run(await harness.submit(p))
    assert state.status == E.EXECUTION_STATE_COMPLETED
    # Failed attempts are not durations of the operation; the successful ones are exact.
    assert seen == [("analytics", "RecordEvents", 2.5), ("ui_ux", "Notify", 2.5)]
    from server.engine import render

    status = render(state)
    assert status.resource_usage.cost_estimate == 3 * 2.0 + 1 * 1.0
    assert state.calls[("analytics", "RecordEvents")] == CallTally(calls=3, retries=2)


async def test_a_failing_attempt_listener_does_not_stop_the_execution() -> None:
    harness = Harness()

    def broken(agent: str, op: str, seconds: float) -> None:
        raise RuntimeError("listener bug")

    harness.engine.add_attempt_listener(broken)
    state = await harness.run(await harness.submit(plan(step("A"))))
    assert state.status == E.EXECUTION_STATE_COMPLETED


# ---- the planner's sources and adaptive timeouts ------------------------------------------------


def _user() -> journey_pb2.UserJourney:
    user = journey_pb2.UserJourney(user_id="u1")
    user.current_data_state.profile_completeness = 100
    user.current_data_state.document_status = journey_pb2.DOCUMENT_STATUS_ANALYZED
    return user


def _timing(p: plan_pb2.OrchestrationPlan, step_id: str) -> plan_pb2.StepTiming:
    return next(s.timing for s in p.workflow_steps if s.step_id == step_id)


def test_the_preview_says_which_estimates_come_from_history_and_with_how_many_samples() -> None:
    def estimates(agent: str, op: str) -> RecordedDurations | None:
        if op == "SearchJobs":
            return RecordedDurations(4.0, 6.0, samples=50, enough=True, p99=8.0)
        if op == "ScoreMatches":
            return RecordedDurations(3.0, 3.5, samples=7, enough=False, p99=4.0)
        return None

    p = Planner().plan("job_discovery", _user(), plan_id="p", now=START, estimates=estimates)
    search, score, notify = _timing(p, "search_jobs"), _timing(p, "score_matches"), _timing(p, "notify_user")
    assert (search.estimate_source, search.estimate_samples) == (plan_pb2.ESTIMATE_SOURCE_HISTORY, 50)
    assert search.estimated_duration.ToNanoseconds() == 4_000_000_000
    assert search.estimated_p95.ToNanoseconds() == 6_000_000_000
    # Too few samples: the declared duration stays, and the preview says how many there are.
    assert (score.estimate_source, score.estimate_samples) == (plan_pb2.ESTIMATE_SOURCE_DECLARED, 7)
    assert score.estimated_duration.ToNanoseconds() == 500_000_000
    assert not score.HasField("estimated_p95")
    assert (notify.estimate_source, notify.estimate_samples) == (plan_pb2.ESTIMATE_SOURCE_DECLARED, 0)
    assert search.timeout.ToNanoseconds() == 10_000_000_000  # adaptive timeouts are off by default


def test_adaptive_timeouts_follow_p99_within_the_declared_timeout() -> None:
    def estimates(agent: str, op: str) -> RecordedDurations | None:
        p99 = {"SearchJobs": 2.0, "ScoreMatches": 4.0, "AnalyzeDocument": 0.01}.get(op)
        return RecordedDurations(p99 / 2, p99, samples=100, p99=p99) if p99 is not None else None

    p = Planner().plan("job_discovery", _user(), plan_id="p", now=START, estimates=estimates, timeout_factor=3.0)
    assert _timing(p, "search_jobs").timeout.ToNanoseconds() == 6_000_000_000  # 2 s x 3, under the declared 10 s
    assert _timing(p, "score_matches").timeout.ToNanoseconds() == 5_000_000_000  # 12 s clamped to the declared 5 s
    assert _timing(p, "analyze_resume").timeout.ToNanoseconds() == 1_000_000_000  # never under a second
    assert _timing(p, "notify_user").timeout.ToNanoseconds() == 5_000_000_000  # no history: as declared
