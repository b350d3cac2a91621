"""The workflow registry's rules without I/O: replicas sharing one store, refreshes, names, bounds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import yaml

from server.planner import DEFINITIONS_DIR, Planner, PlanningError
from server.registry import (
    MISS_REFRESH_SECONDS,
    REFRESH_SECONDS,
    WorkflowConflictError,
    WorkflowNotFoundError,
    WorkflowRefusedError,
    WorkflowRegistry,
    parse_version,
)
from server.store.base import WorkflowRow

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryWorkflows:
    """A WorkflowStore in memory, with the stores' rules (insert once, built-ins follow the release)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], WorkflowRow] = {}
        self.reads = 0

    async def insert_workflow(self, row: WorkflowRow) -> WorkflowRow:
        key = (row.workflow_type, row.version)
        stored = self.rows.get(key)
        if stored is None:
            self.rows[key] = row
        elif stored.builtin and row.builtin and stored.digest != row.digest:
            self.rows[key] = replace(stored, definition=row.definition, digest=row.digest)
        return self.rows[key]

    async def list_workflows(self, workflow_type: str = "") -> list[WorkflowRow]:
        self.reads += 1
        return [r for r in self.rows.values() if not workflow_type or r.workflow_type == workflow_type]

    async def deprecate_workflow(
        self, workflow_type: str, version: str, when: datetime, reason: str
    ) -> WorkflowRow | None:
        stored = self.rows.get((workflow_type, version))
        if stored is not None and stored.deprecated_at is None:
            stored = self.rows[(workflow_type, version)] = replace(
                stored, deprecated_at=when, deprecation_reason=reason
            )
        return stored


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner()


def new_version(version: str) -> str:
    definition = yaml.safe_load((DEFINITIONS_DIR / "job_discovery.yaml").read_text())
    definition["version"] = version
    definition["description"] = f"job_discovery {version}"
    return yaml.safe_dump(definition, sort_keys=False)


async def test_a_replica_sees_another_replicas_versions_within_the_refresh_interval(planner: Planner) -> None:
    store, ticks = MemoryWorkflows(), Ticks()
    a = WorkflowRegistry(store, planner, now=lambda: NOW, shared=True, monotonic=ticks)
    b = WorkflowRegistry(store, planner, now=lambda: NOW, shared=True, monotonic=ticks)
    await a.start()
    await b.start()
    assert len(store.rows) == 4  # the built-ins, once, whoever starts first

    await a.register(new_version("1.1.0"))
    assert (await a.pick("job_discovery")).version == "1.1.0"
    reads = store.reads
    assert (await b.pick("job_discovery")).version == "1.0.0"  # b's copy is fresh: no read
    assert store.reads == reads
    ticks.now += REFRESH_SECONDS
    assert (await b.pick("job_discovery")).version == "1.1.0"
    assert store.reads == reads + 1

    # A version b does not know makes it look at once (rate-limited), not after the interval.
    await a.register(new_version("1.2.0"))
    ticks.now += MISS_REFRESH_SECONDS
    assert (await b.pick("job_discovery", version="1.2.0")).version == "1.2.0"
    # A deprecation on a is seen by b's next refresh.
    await a.deprecate("job_discovery", "1.2.0", "bad")
    ticks.now += REFRESH_SECONDS
    with pytest.raises(WorkflowRefusedError, match=r"job_discovery 1\.2\.0 is deprecated \(bad\)"):
        await b.pick("job_discovery", version="1.2.0")
    assert (await b.pick("job_search")).version == "1.1.0"


async def test_a_replica_registering_a_taken_version_with_another_text_is_a_conflict(planner: Planner) -> None:
    store, ticks = MemoryWorkflows(), Ticks()
    a = WorkflowRegistry(store, planner, now=lambda: NOW, shared=True, monotonic=ticks)
    b = WorkflowRegistry(store, planner, now=lambda: NOW, shared=True, monotonic=ticks)
    await a.start()
    await b.start()
    await a.register(new_version("2.0.0"))
    # b has not refreshed, but a registration always reads the store first.
    with pytest.raises(WorkflowConflictError, match=r"job_discovery 2\.0\.0 is registered already"):
        await b.register(new_version("2.0.0").replace("job_discovery 2.0.0", "other"))
    registered, created = await b.register(new_version("2.0.0"))
    assert (registered.row.version, created) == ("2.0.0", False)


async def test_a_single_process_never_rereads_its_store(planner: Planner) -> None:
    store, ticks = MemoryWorkflows(), Ticks()
    registry = WorkflowRegistry(store, planner, now=lambda: NOW, monotonic=ticks)
    await registry.start()
    reads = store.reads
    await registry.register(new_version("1.1.0"))
    ticks.now += 10 * REFRESH_SECONDS
    assert (await registry.pick("job_discovery")).version == "1.1.0"
    with pytest.raises(WorkflowNotFoundError):
        await registry.pick("job_discovery", version="9.0.0")
    assert store.reads == reads


async def test_a_changed_builtin_file_rewrites_its_row_and_a_restart_adds_nothing(planner: Planner) -> None:
    store = MemoryWorkflows()
    await WorkflowRegistry(store, planner, now=lambda: NOW).start()
    key = ("job_discovery", "1.0.0")
    store.rows[key] = replace(store.rows[key], definition="# an older release's text", digest="old")
    await WorkflowRegistry(store, planner, now=lambda: NOW).start()
    assert len(store.rows) == 4
    assert store.rows[key].definition == (DEFINITIONS_DIR / "job_discovery.yaml").read_text()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.0.0", (1, 0, 0)), ("0.10.999999999", (0, 10, 999999999)), ("12.3.4", (12, 3, 4))],
)
def test_semantic_versions_are_read_numerically(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1", "1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.0.0-rc1", "1.0.0+b", "1.1234567890.0", " 1.0.0"]
)
def test_anything_else_is_not_a_version(text: str) -> None:
    with pytest.raises(PlanningError, match="not a semantic version"):
        parse_version(text)


async def test_versions_order_numerically_not_as_text(planner: Planner) -> None:
    registry = WorkflowRegistry(MemoryWorkflows(), planner, now=lambda: NOW)
    await registry.start()
    for version in ("1.9.0", "1.10.0", "1.2.0"):
        await registry.register(new_version(version))
    assert (await registry.pick("job_discovery")).version == "1.10.0"
    assert [v.row.version for v in await registry.versions("job_discovery")] == [
        "1.10.0",
        "1.9.0",
        "1.2.0",
        "1.0.0",
    ]
    auto, _ = await registry.register(new_version("x").replace("version: x\n", ""))
    assert auto.row.version == "1.10.1"
