"""The workflow registry: versioned, immutable workflow definitions, stored durably, planned by version.

Past the house's ~500 lines because it is the one owner of the eleven rules below (their text is
a tenth of it): splitting the cache from the rules would put rule 9 and rule 5 in two places.

Rules (one owner each; server/api/registry.py only translates):

1. **Versions** are semantic versions MAJOR.MINOR.PATCH (each 0-999999999, no leading zeros, no
   pre-release or build suffix), ordered numerically. A (workflow_type, version) is registered
   once and never changes: the same definition again answers the stored one (created False),
   another definition is a conflict (ALREADY_EXISTS). Two definitions are the same when their
   texts are (their SHA-256 digests are equal).
2. **Validation** is the built-ins' own: `parse_definition` (server/planner/_definitions.py) and
   `Planner.check`, which plans the definition under every adaptation; any problem is a
   PlanningError naming ``definition_yaml`` (INVALID_ARGUMENT).
3. **The version of a registration**: the request's, else the definition's ``version`` key (both
   given: they must agree), else: the identical text registered already as a version of the
   type answers that version, otherwise the next patch after the type's highest version (1.0.0
   for a new type).
4. **Names.** A type is named by its workflow_type and by the aliases of every version of it; a
   journey type maps to the type one of whose versions lists it. A registration may not take a
   name or journey type of another type (INVALID_ARGUMENT): a name once a type's stays its own.
5. **Latest**: a type's highest version that is neither deprecated nor unusable (rule 8). New
   executions naming no version get it; with none, FAILED_PRECONDITION. A version named
   explicitly: unknown is NOT_FOUND, deprecated or unusable FAILED_PRECONDITION (naming it).
   An execution is pinned to its version by its plan (workflow_version, in the started event):
   nothing here touches a started execution.
6. **Deprecation** is recorded once (a second changes nothing) and never undone.
7. **Built-ins** are inserted at start as their definitions' version (1.0.0), as built-in rows;
   inserting is idempotent, and a built-in row's text follows the release that starts (a
   release owns its built-ins). For a built-in row the process plans its own built-in
   definition, the one its planner checked at start.
8. **Start-up never fails on a stored row.** A row whose text no longer parses or checks under
   this release's rules is kept and listed with its problem, logged once, and never planned.
9. **Replicas** (a shared store): each process caches the rows; before planning it re-reads them
   when its copy is older than REFRESH_SECONDS, and on a name or version it does not know when
   older than MISS_REFRESH_SECONDS, so a version registered or deprecated on another replica is
   seen within REFRESH_SECONDS. A process on its own (SQLite) never re-reads: its writes are
   the only ones.
10. **Bounds**: at most MAX_TYPES types and MAX_VERSIONS per type (RESOURCE_EXHAUSTED past them);
   definitions at most MAX_DEFINITION_BYTES (server.planner); a deprecation reason at most
   MAX_REASON characters.
11. **A/B variants** (server/planner/_variants.py for their syntax and hash): a variant's version
   must be a registered, usable, not deprecated version of the same type that carries no
   variants itself (or the registered definition's own version), else INVALID_ARGUMENT naming
   ``definition_yaml: variants[i].version``. A new execution planned from a definition with
   variants (the latest, or a version named explicitly) runs the version of the variant its
   user hashes into, over the variants whose versions are still usable and not deprecated (a
   version deprecated later leaves the split; its users are re-hashed over the others). The
   experiment is the carrying definition: "<type>@<version>". A request never chooses a variant;
   naming a variant's target version explicitly runs it outside the experiment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from baton.v1 import journey_pb2, variants_pb2

from server.planner import (
    DefinitionError,
    Planner,
    PlanningError,
    UnknownWorkflowError,
    WorkflowDefinition,
    assign_variant,
    parse_definition,
)
from server.quoting import clip
from server.store.base import WorkflowRow, WorkflowStore

logger = logging.getLogger(__name__)

MAX_TYPES = 1000
"""Workflow types the registry holds at most."""
MAX_VERSIONS = 1000
"""Versions of one workflow type the registry holds at most."""
MAX_REASON = 1024
"""Characters of a deprecation's reason."""
REFRESH_SECONDS = 5.0
"""With a shared store: the oldest a process's copy of the registry may be when it plans (rule 9)."""
MISS_REFRESH_SECONDS = 0.5
"""With a shared store: how often an unknown name or version makes a process re-read (rule 9)."""

_SEMVER = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")
_FIRST = (1, 0, 0)

Version = tuple[int, int, int]


class WorkflowNotFoundError(LookupError):
    """No such workflow type or version (NOT_FOUND); the message names the field."""


class WorkflowConflictError(Exception):
    """The version is registered with another definition (ALREADY_EXISTS)."""


class WorkflowRefusedError(Exception):
    """The version exists but may not start executions: deprecated or unusable (FAILED_PRECONDITION)."""


class RegistryFullError(Exception):
    """Too many types or versions (RESOURCE_EXHAUSTED)."""


def parse_version(text: str, field: str = "version") -> Version:
    """Reads a semantic version (rule 1).

    Raises:
        PlanningError: it is not MAJOR.MINOR.PATCH, naming `field`.
    """
    match = _SEMVER.fullmatch(text)
    if match is None:
        raise PlanningError(
            field, f"{clip(text)!r} is not a semantic version MAJOR.MINOR.PATCH (such as 1.2.0, without leading zeros)"
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _version_text(version: Version) -> str:
    return ".".join(str(part) for part in version)


def digest_of(text: str) -> str:
    """The SHA-256 of a definition's text, hex (rule 1)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RegisteredVersion:
    """One stored version and what this process made of it."""

    row: WorkflowRow
    """The stored row."""
    definition: WorkflowDefinition | None
    """The definition, validated; None when it is unusable."""
    problem: str = ""
    """Why it is unusable (rule 8); empty when usable."""
    latest: bool = False
    """Whether it is its type's latest (rule 5)."""

    @property
    def key(self) -> Version:
        """Its version, for ordering (an unreadable version sorts first)."""
        match = _SEMVER.fullmatch(self.row.version)
        return (-1, 0, 0) if match is None else (int(match[1]), int(match[2]), int(match[3]))

    @property
    def usable(self) -> bool:
        """Whether new executions may start with it (ignoring deprecation)."""
        return self.definition is not None

    @property
    def deprecated(self) -> bool:
        """Whether it was deprecated."""
        return self.row.deprecated_at is not None


class WorkflowRegistry:
    """Every registered version of every workflow type, cached over the store (see the rules above)."""

    def __init__(
        self,
        store: WorkflowStore,
        planner: Planner,
        *,
        now: Callable[[], datetime],
        shared: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wires the registry; `start()` loads it.

        Args:
            store: where versions are stored.
            planner: validates definitions (rule 2) and owns the built-ins (rule 7).
            now: the wall clock, for registration and deprecation times.
            shared: whether other processes write the same store (rule 9).
            monotonic: seconds for the refresh intervals.
        """
        self._store = store
        self._planner = planner
        self._now = now
        self._shared = shared
        self._monotonic = monotonic
        self._builtins = {d.workflow_type: d for d in planner.definitions()}
        self._versions: dict[str, dict[str, RegisteredVersion]] = {}
        self._names: dict[str, str] = {}
        self._journeys: dict[int, str] = {}
        # What each stored text came to, by (type, version, digest): texts never change under a key.
        self._parsed: dict[tuple[str, str, str], tuple[WorkflowDefinition | None, str]] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Inserts the built-ins (rule 7) and loads every stored version (rule 8)."""
        for definition in self._builtins.values():
            text = definition.text
            row = WorkflowRow(
                workflow_type=definition.workflow_type,
                version=definition.version,
                definition=text,
                digest=digest_of(text),
                builtin=True,
                registered_at=self._now(),
            )
            stored = await self._store.insert_workflow(row)
            if not stored.builtin:
                logger.warning(
                    "workflow %s %s was registered before it became a built-in; the registered definition is kept",
                    row.workflow_type,
                    row.version,
                )
        await self._reload()
        unusable = [v for versions in self._versions.values() for v in versions.values() if not v.usable]
        logger.info(
            "workflow registry: %d types, %d versions (%d unusable)",
            len(self._versions),
            sum(len(v) for v in self._versions.values()),
            len(unusable),
        )

    # ---- reading ----------------------------------------------------------------------------

    async def versions(self, workflow_type: str = "") -> list[RegisteredVersion]:
        """Every version (of one type or alias, or all), by type, newest version first.

        Raises:
            WorkflowNotFoundError: `workflow_type` names no type.
        """
        await self._fresh()
        if workflow_type:
            canonical = await self._canonical(workflow_type)
            types: Iterable[str] = [canonical]
        else:
            types = sorted(self._versions)
        return [v for t in types for v in sorted(self._versions[t].values(), key=lambda v: v.key, reverse=True)]

    async def get(self, workflow_type: str, version: str = "") -> RegisteredVersion:
        """One version; with no version the latest, or the highest when no version is usable.

        Raises:
            WorkflowNotFoundError: no such type or version.
            PlanningError: `version` is not a semantic version.
        """
        await self._fresh()
        canonical = await self._canonical(workflow_type)
        if not version:
            versions = self._versions[canonical].values()
            return next((v for v in versions if v.latest), None) or max(versions, key=lambda v: v.key)
        return await self._version(canonical, version, "version")

    async def pick(
        self,
        workflow_type: str,
        journey_type: journey_pb2.JourneyType = journey_pb2.JOURNEY_TYPE_UNSPECIFIED,
        version: str = "",
    ) -> WorkflowDefinition:
        """The definition a new execution (or plan) of a type is planned from (rule 5).

        Args:
            workflow_type: a type or alias, any case; empty to use `journey_type`.
            journey_type: the journey type standing in for an empty `workflow_type`.
            version: the request's workflow_version; empty for the latest.

        Raises:
            UnknownWorkflowError: no type has that name (or journey type); INVALID_ARGUMENT, as
                an unknown type has always been.
            PlanningError: `version` is not a semantic version.
            WorkflowNotFoundError: the type has no such version.
            WorkflowRefusedError: the version, or every version, is deprecated or unusable.
        """
        if version:
            parse_version(version, "workflow_version")
        await self._fresh()
        name = workflow_type.strip().lower()
        canonical = self._names.get(name) if name else self._journeys.get(journey_type)
        if canonical is None and await self._refresh_on_miss():
            canonical = self._names.get(name) if name else self._journeys.get(journey_type)
        if canonical is None:
            aliases = sorted((a, c) for a, c in self._names.items() if a != c)
            raise UnknownWorkflowError(workflow_type, sorted(self._versions), aliases)
        if version:
            chosen = await self._version(canonical, version, "workflow_version")
            if chosen.deprecated:
                reason = f" ({clip(chosen.row.deprecation_reason)})" if chosen.row.deprecation_reason else ""
                raise WorkflowRefusedError(
                    f"workflow_version: {canonical} {version} is deprecated{reason}: it starts no new executions"
                    f"{self._instead(canonical)}"
                )
        else:
            versions = self._versions[canonical].values()
            found = next((v for v in versions if v.latest), None)
            if found is None:
                raise WorkflowRefusedError(
                    f"workflow_type: every version of {canonical} is deprecated or unusable; register a new one"
                )
            chosen = found
        if chosen.definition is None:
            raise WorkflowRefusedError(
                f"workflow_version: {canonical} {chosen.row.version} is unusable: {chosen.problem}"
                f"{self._instead(canonical)}"
            )
        return chosen.definition

    async def assign(
        self,
        workflow_type: str,
        journey_type: journey_pb2.JourneyType,
        version: str,
        user_id: str,
    ) -> tuple[WorkflowDefinition, variants_pb2.VariantAssignment | None]:
        """As `pick`, then the user's A/B variant when the definition carries variants (rule 11).

        Returns:
            The definition to plan from (the variant's), and the assignment to record (None
            outside an experiment).

        Raises:
            As `pick`; WorkflowRefusedError too when no variant's version may start executions.
        """
        carrier = await self.pick(workflow_type, journey_type, version)
        if not carrier.variants:
            return carrier, None
        versions = self._versions.get(carrier.workflow_type, {})
        eligible: list[tuple[str, int, WorkflowDefinition]] = []
        for variant in carrier.variants:
            if variant.version in ("", carrier.version):
                eligible.append((variant.name, variant.weight, carrier))
                continue
            target = versions.get(variant.version)
            if target is None or target.definition is None or target.deprecated or target.definition.variants:
                continue
            eligible.append((variant.name, variant.weight, target.definition))
        experiment = f"{carrier.workflow_type}@{carrier.version}"
        if not eligible:
            raise WorkflowRefusedError(
                f"workflow_version: every variant of {experiment} runs a deprecated or unusable version"
            )
        weights = [weight for _, weight, _ in eligible]
        name, weight, definition = eligible[assign_variant(carrier.workflow_type, experiment, user_id, weights)]
        return definition, variants_pb2.VariantAssignment(
            name=name, experiment=experiment, weight=weight, total_weight=sum(weights)
        )

    async def resolve(self, workflow_type: str) -> str:
        """The workflow type a name denotes: a registered type, or an alias of any of its versions.

        Raises:
            PlanningError: an empty name.
            WorkflowNotFoundError: no registered type answers to it.
        """
        return await self._canonical(workflow_type)

    def _instead(self, canonical: str) -> str:
        latest = next((v for v in self._versions[canonical].values() if v.latest), None)
        return f"; the latest is {latest.row.version}" if latest is not None else ""

    async def _canonical(self, workflow_type: str) -> str:
        name = workflow_type.strip().lower()
        if not name:
            raise PlanningError("workflow_type", "required")
        if name not in self._names:
            await self._refresh_on_miss()
        if name not in self._names:
            known = ", ".join(sorted(self._versions))
            raise WorkflowNotFoundError(f"workflow_type: no workflow type {clip(workflow_type)!r}; registered: {known}")
        return self._names[name]

    async def _version(self, canonical: str, version: str, field: str) -> RegisteredVersion:
        parse_version(version, field)
        found = self._versions[canonical].get(version)
        if found is None and await self._refresh_on_miss():
            found = self._versions[canonical].get(version)
        if found is None:
            known = ", ".join(v.row.version for v in sorted(self._versions[canonical].values(), key=lambda v: v.key))
            raise WorkflowNotFoundError(f"{field}: {canonical} has no version {version}; its versions: {known}")
        return found

    # ---- writing ----------------------------------------------------------------------------

    async def register(self, text: str, version: str = "", registered_by: str = "") -> tuple[RegisteredVersion, bool]:
        """Registers a version (rules 1-4, 10); returns it and whether it was created now.

        Raises:
            PlanningError: the definition or the version is invalid (the field named).
            WorkflowConflictError: the version is registered with another definition.
            RegistryFullError: too many types or versions.
        """
        if version:
            parse_version(version)
        try:
            definition = parse_definition(text, "definition_yaml", version=version)
        except DefinitionError as error:
            raise PlanningError("definition_yaml", _without_source(error)) from None
        if definition.version:
            parse_version(definition.version, "definition_yaml: version")
        digest = digest_of(text)
        async with self._lock:
            await self._fresh(force=self._shared)
            canonical = definition.workflow_type
            versions = self._versions.get(canonical, {})
            if not definition.version:
                same = next((v for v in versions.values() if v.row.digest == digest), None)
                if same is not None:
                    return same, False
                highest = max((v.key for v in versions.values()), default=None)
                next_version = _FIRST if highest is None else (highest[0], highest[1], highest[2] + 1)
                definition = _with_version(definition, _version_text(next_version))
            existing = versions.get(definition.version)
            if existing is not None:
                if existing.row.digest == digest:
                    return existing, False
                raise WorkflowConflictError(_conflict(existing))
            self._check_names(definition)
            self._check_variants(definition, versions)
            if canonical not in self._versions and len(self._versions) >= MAX_TYPES:
                raise RegistryFullError(f"definition_yaml: the registry holds {MAX_TYPES} workflow types already")
            if len(versions) >= MAX_VERSIONS:
                raise RegistryFullError(f"definition_yaml: {canonical} has {MAX_VERSIONS} versions already")
            try:
                self._planner.check(definition)
            except DefinitionError as error:
                raise PlanningError("definition_yaml", _without_source(error)) from None
            row = WorkflowRow(
                workflow_type=canonical,
                version=definition.version,
                definition=text,
                digest=digest,
                builtin=False,
                registered_at=self._now(),
                registered_by=registered_by,
            )
            stored = await self._store.insert_workflow(row)
            self._parsed[(canonical, row.version, digest)] = (definition, "")
            if self._shared:
                await self._reload()
            else:
                self._index([*self._rows(), stored])
            registered = self._versions[canonical][row.version]
            if stored.digest != digest:  # another replica registered it first, with another text
                raise WorkflowConflictError(_conflict(registered))
            logger.info("workflow %s %s registered by %r", canonical, row.version, registered_by or "anonymous")
            return registered, stored == row

    async def deprecate(self, workflow_type: str, version: str, reason: str) -> RegisteredVersion:
        """Deprecates a version (rule 6); returns it.

        Raises:
            PlanningError: a missing or malformed field, or a reason too long.
            WorkflowNotFoundError: no such type or version.
        """
        if not version:
            raise PlanningError("version", "required: the version to deprecate")
        if len(reason) > MAX_REASON:
            raise PlanningError("reason", f"at most {MAX_REASON} characters, got {len(reason)}")
        async with self._lock:
            await self._fresh(force=self._shared)
            canonical = await self._canonical(workflow_type)
            await self._version(canonical, version, "version")
            stored = await self._store.deprecate_workflow(canonical, version, self._now(), reason)
            if stored is None:
                raise WorkflowNotFoundError(f"version: {canonical} has no version {version}")
            if self._shared:
                await self._reload()
            else:
                self._index(
                    [stored if (r.workflow_type, r.version) == (canonical, version) else r for r in self._rows()]
                )
            logger.info("workflow %s %s deprecated: %s", canonical, version, reason[:200])
            return self._versions[canonical][version]

    def _check_names(self, definition: WorkflowDefinition) -> None:
        """Refuses names and journey types of another type (rule 4)."""
        for name in definition.names():
            owner = self._names.get(name)
            if owner is not None and owner != definition.workflow_type:
                what = "is" if owner == name else f"is an alias of {owner}, which is"
                raise PlanningError(
                    "definition_yaml", f"the name {name!r} {what} another workflow type; choose another name"
                )
        for journey in definition.journey_types:
            owner = self._journeys.get(journey)
            if owner is not None and owner != definition.workflow_type:
                label = journey_pb2.JourneyType.Name(journey).removeprefix("JOURNEY_TYPE_").lower()
                raise PlanningError("definition_yaml", f"journey type {label} is already planned with {owner}")

    @staticmethod
    def _check_variants(definition: WorkflowDefinition, versions: Mapping[str, RegisteredVersion]) -> None:
        """Refuses a variant whose version may not run in an experiment (rule 11)."""
        for i, variant in enumerate(definition.variants):
            if variant.version in ("", definition.version):
                continue
            field = f"definition_yaml: variants[{i}].version"
            parse_version(variant.version, field)
            target = versions.get(variant.version)
            if target is None:
                known = ", ".join(v.row.version for v in sorted(versions.values(), key=lambda v: v.key)) or "none"
                raise PlanningError(
                    field,
                    f"{definition.workflow_type} has no version {variant.version} (variant {variant.name!r});"
                    f" its versions: {known}",
                )
            problem = (
                "is deprecated"
                if target.deprecated
                else f"is unusable: {target.problem}"
                if target.definition is None
                else "carries variants itself"
                if target.definition.variants
                else ""
            )
            if problem:
                raise PlanningError(
                    field, f"{definition.workflow_type} {variant.version} (variant {variant.name!r}) {problem}"
                )

    # ---- the cache ----------------------------------------------------------------------------

    def _rows(self) -> list[WorkflowRow]:
        return [v.row for versions in self._versions.values() for v in versions.values()]

    async def _fresh(self, *, force: bool = False) -> None:
        if self._shared and (force or self._monotonic() - self._loaded_at >= REFRESH_SECONDS):
            await self._reload()

    async def _refresh_on_miss(self) -> bool:
        """Re-reads the store after a miss, at most every MISS_REFRESH_SECONDS; whether it did."""
        if not self._shared or self._monotonic() - self._loaded_at < MISS_REFRESH_SECONDS:
            return False
        await self._reload()
        return True

    async def _reload(self) -> None:
        rows = await self._store.list_workflows()
        self._loaded_at = self._monotonic()
        self._index(rows)

    def _index(self, rows: Sequence[WorkflowRow]) -> None:
        """Rebuilds the maps from every row: definitions (parsed once per text), names, latest."""
        versions: dict[str, dict[str, RegisteredVersion]] = {}
        for row in rows:
            definition, problem = self._definition(row)
            versions.setdefault(row.workflow_type, {})[row.version] = RegisteredVersion(row, definition, problem)
        names: dict[str, str] = {}
        journeys: dict[int, str] = {}
        for canonical in sorted(versions):
            names.setdefault(canonical, canonical)
            ordered = sorted(versions[canonical].values(), key=lambda v: v.key, reverse=True)
            for v in ordered:
                if v.definition is not None:
                    for alias in v.definition.aliases:
                        names.setdefault(alias, canonical)
                    for journey in v.definition.journey_types:
                        journeys.setdefault(journey, canonical)
            latest = next((v for v in ordered if v.usable and not v.deprecated), None)
            if latest is not None:
                versions[canonical][latest.row.version] = replace(latest, latest=True)
        self._versions, self._names, self._journeys = versions, names, journeys

    def _definition(self, row: WorkflowRow) -> tuple[WorkflowDefinition | None, str]:
        key = (row.workflow_type, row.version, row.digest)
        if key in self._parsed:
            return self._parsed[key]
        builtin = self._builtins.get(row.workflow_type)
        if row.builtin and builtin is not None and builtin.version == row.version:
            result: tuple[WorkflowDefinition | None, str] = (builtin, "")  # rule 7
        else:
            result = self._validate(row)
        self._parsed[key] = result
        return result

    def _validate(self, row: WorkflowRow) -> tuple[WorkflowDefinition | None, str]:
        """A stored row's definition under this release's rules, or its problem (rule 8)."""
        try:
            parse_version(row.version)
            definition = parse_definition(row.definition, "definition_yaml", version=row.version)
            if definition.workflow_type != row.workflow_type:
                raise DefinitionError("definition_yaml", f"defines {definition.workflow_type!r}")
            self._planner.check(definition)
        except (DefinitionError, PlanningError) as error:
            problem = _without_source(error) if isinstance(error, DefinitionError) else str(error)
            logger.warning(
                "workflow %s %s is stored but unusable (it starts no executions): %s",
                row.workflow_type[:64],
                row.version[:32],
                problem,
            )
            return None, problem
        return definition, ""

    def names(self) -> Mapping[str, str]:
        """Every name a request may use → its workflow type (for tests and the CLI's messages)."""
        return dict(self._names)


def _with_version(definition: WorkflowDefinition, version: str) -> WorkflowDefinition:
    template = definition.template()
    template.workflow_version = version
    return replace(definition, version=version, template_bytes=template.SerializeToString(deterministic=True))


def _without_source(error: DefinitionError) -> str:
    return error.message


def _conflict(existing: RegisteredVersion) -> str:
    row = existing.row
    return (
        f"version: {row.workflow_type} {row.version} is registered already with another definition"
        f" (digest {row.digest[:12]}); a version never changes: register this one as a new version"
    )


__all__ = [
    "MAX_REASON",
    "MAX_TYPES",
    "MAX_VERSIONS",
    "RegisteredVersion",
    "RegistryFullError",
    "WorkflowConflictError",
    "WorkflowNotFoundError",
    "WorkflowRefusedError",
    "WorkflowRegistry",
    "digest_of",
    "parse_version",
]
