"""Retention: the --retention setting, and sweeps over a memory store driven by a fake clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from baton.v1 import execution_pb2 as E

from server.cli import main
from server.config import ConfigError, ServerConfig, parse_duration
from server.retention import RetentionSweeper, sweep, sweep_interval
from server.store import Deletion, NewExecution
from tests.unit.fakes import START, FakeClock
from tests.unit.memory_store import MemoryStore

DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12h", 43_200), ("30d", 2_592_000), ("2w", 1_209_600), ("90m", 5_400), ("1.5h", 5_400), (" 7d ", 604_800)],
)
def test_a_retention_reads_one_number_and_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text, "retention") == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "-1d", "1h30m", "30 d", "1e3d", "٣d"])
def test_a_retention_that_is_not_a_duration_is_refused_naming_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^retention: expected a duration such as 12h or 30d"):
        parse_duration(text, "retention")


@pytest.mark.parametrize("seconds", [1.0, 3599.0, 3651 * 86400.0, -5.0])
def test_a_retention_shorter_than_an_hour_or_longer_than_ten_years_is_refused(seconds: float) -> None:
    with pytest.raises(ConfigError, match=r"^retention: "):
        ServerConfig(retention=seconds)


def test_retention_is_off_by_default_and_an_hour_to_ten_years_is_accepted() -> None:
    assert ServerConfig().retention == 0
    assert ServerConfig(retention=3600).retention == 3600
    assert ServerConfig(retention=3650 * 86400).retention == 3650 * 86400


def test_serve_with_a_bad_retention_exits_two_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--retention", "soon", "--store", "sqlite:///unused.db"]) == 2
    assert "retention" in capsys.readouterr().err


def test_sweeps_run_every_tenth_of_the_retention_within_a_minute_and_an_hour() -> None:
    assert sweep_interval(timedelta(hours=1)) == 360
    assert sweep_interval(timedelta(days=30)) == 3600
    assert sweep_interval(timedelta(seconds=10)) == 60


async def _execution(store: MemoryStore, execution_id: str, state: int, ended: timedelta) -> None:
    """An execution of user u1 created at START whose last event is `ended` after START."""
    first = E.ExecutionEvent(sequence=1)
    first.time.FromDatetime(START)
    await store.create_execution(NewExecution(execution_id, "u1", "w", "p", "", 2, START), first)
    last = E.ExecutionEvent(sequence=2)
    last.time.FromDatetime(START + ended)
    last.execution_completed.SetInParent()
    await store.append(execution_id, [last], state)


async def test_a_sweep_deletes_in_batches_and_forgets_each_batch() -> None:
    store = MemoryStore()
    for n in range(5):
        await _execution(store, f"done-{n}", E.EXECUTION_STATE_COMPLETED, timedelta(minutes=n))
    await _execution(store, "running", E.EXECUTION_STATE_RUNNING, timedelta(minutes=1))
    forgotten: list[list[str]] = []

    deletion = await sweep(store, START + DAY, batch=2, pause=0, forget=forgotten.append)

    assert sorted(deletion.execution_ids) == [f"done-{n}" for n in range(5)]
    assert deletion.events == 10
    assert [len(batch) for batch in forgotten] == [2, 2, 1]
    assert list(store.records) == ["running"]


async def test_the_sweeper_sweeps_at_once_then_every_interval_with_the_cutoff_moving_with_the_clock() -> None:
    store = MemoryStore()
    clock = FakeClock(START + timedelta(days=30, hours=1))
    await _execution(store, "old", E.EXECUTION_STATE_FAILED, timedelta(0))
    await _execution(store, "younger", E.EXECUTION_STATE_CANCELLED, timedelta(days=1))
    await _execution(store, "paused", E.EXECUTION_STATE_PAUSED, timedelta(0))
    sweeper = RetentionSweeper(store, clock, timedelta(days=30), pause=0)
    task = asyncio.create_task(sweeper.run())
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert sorted(store.records) == ["paused", "younger"]
        clock.advance(sweeper.interval - 1)
        for _ in range(20):
            await asyncio.sleep(0)
        assert "younger" in store.records  # not yet a day and an interval later
        clock.advance_to(START + timedelta(days=31, seconds=1))
        for _ in range(20):
            await asyncio.sleep(0)
        assert sorted(store.records) == ["paused"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _FailingOnce(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def delete_finished_before(self, cutoff: object, limit: int) -> Deletion:
        self.calls += 1
        if self.calls == 1:
            raise OSError("the database is away")
        return await super().delete_finished_before(cutoff, limit)  # type: ignore[arg-type]


async def test_a_failed_sweep_is_logged_and_tried_again_at_the_next_interval(caplog: pytest.LogCaptureFixture) -> None:
    store = _FailingOnce()
    clock = FakeClock(START + timedelta(days=31))
    await _execution(store, "old", E.EXECUTION_STATE_COMPLETED, timedelta(0))
    sweeper = RetentionSweeper(store, clock, timedelta(days=30), pause=0)
    task = asyncio.create_task(sweeper.run())
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert "old" in store.records
        assert "retention sweep failed" in caplog.text
        clock.advance(sweeper.interval)
        for _ in range(20):
            await asyncio.sleep(0)
        assert store.records == {}
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_sweeper_needs_a_positive_retention_and_batch() -> None:
    with pytest.raises(ValueError, match="retention"):
        RetentionSweeper(MemoryStore(), FakeClock(), timedelta(0))
    with pytest.raises(ValueError, match="batch"):
        RetentionSweeper(MemoryStore(), FakeClock(), DAY, batch=0)
