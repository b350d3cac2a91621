"""A definition's A/B variants: their syntax, and the sticky hash that assigns a user to one.

Rules (server/registry.py checks what needs the other versions, rule 11 there):

1. ``variants`` is a list of 2 to MAX_VARIANTS mappings ``{name, weight, version}``: ``name``
   a lower-case identifier unique in the list, ``weight`` an integer from 1 to MAX_WEIGHT,
   ``version`` optional: the registered version of the same workflow type the variant runs
   (omitted: the definition that carries the variants). Nothing else may be written.
2. **Assignment** is a pure function of (workflow type, experiment, user id): the first 8 bytes
   of the SHA-256 of the three, read as an integer modulo the summed weights, fall in one
   variant's share. No process state, no randomness: the same user gets the same variant on
   every execution, on every replica and after every restart, as long as the experiment and
   its eligible variants stay the same.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.planner._errors import DefinitionError

__all__ = ["MAX_VARIANTS", "MAX_WEIGHT", "Variant", "assign_variant", "parse_variants"]

MAX_VARIANTS = 16
"""Variants one definition may carry."""
MAX_WEIGHT = 1_000_000
"""The largest weight of one variant."""

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_FIELDS = ("name", "weight", "version")


@dataclass(frozen=True)
class Variant:
    """One named variant of a definition (rule 1)."""

    name: str
    """Unique among the definition's variants; recorded on each execution assigned to it."""
    weight: int
    """Its share of users, relative to the other variants' weights (1 to MAX_WEIGHT)."""
    version: str = ""
    """The version of the same workflow type it runs; empty: the definition carrying it."""


def parse_variants(source: str, raw: Any) -> tuple[Variant, ...]:
    """Reads a definition's ``variants`` key (rule 1).

    Raises:
        DefinitionError: naming the variant and field at fault.
    """
    if not isinstance(raw, list):
        raise DefinitionError(source, "variants must be a list of {name, weight, version} mappings")
    if not 2 <= len(raw) <= MAX_VARIANTS:
        raise DefinitionError(source, f"variants: from 2 to {MAX_VARIANTS} variants, got {len(raw)}")
    variants: list[Variant] = []
    for i, item in enumerate(raw):
        where = f"variants[{i}]"
        if not isinstance(item, dict):
            raise DefinitionError(source, f"{where} must be a mapping with name, weight and version")
        unknown = [k for k in item if k not in _FIELDS]
        if unknown:
            raise DefinitionError(
                source, f"{where}: unknown key {str(unknown[0])[:64]!r}; valid keys: name, weight, version"
            )
        name = item.get("name")
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise DefinitionError(
                source, f"{where}.name must be a lower-case name (a letter, then letters, digits, _ or -, at most 64)"
            )
        if any(v.name == name for v in variants):
            raise DefinitionError(source, f"{where}.name {name!r} is another variant's name: names must be unique")
        weight = item.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
            raise DefinitionError(source, f"{where}.weight must be an integer from 1 to {MAX_WEIGHT}, got {weight!r}")
        version = item.get("version", "")
        if not isinstance(version, str):
            raise DefinitionError(source, f'{where}.version must be a string such as "1.1.0" (quote it)')
        variants.append(Variant(name=name, weight=weight, version=version))
    return tuple(variants)


def assign_variant(workflow_type: str, experiment: str, user_id: str, weights: Sequence[int]) -> int:
    """The index of the variant a user is assigned among `weights` (rule 2).

    Args:
        workflow_type: the canonical workflow type.
        experiment: the experiment's identity (the carrying definition's version).
        user_id: the execution's owner.
        weights: the eligible variants' weights, each positive, in the definition's order.

    Raises:
        ValueError: no weights, or one not positive.
    """
    if not weights or any(w <= 0 for w in weights):
        raise ValueError(f"weights must be positive and not empty, got {list(weights)}")
    key = "\0".join((workflow_type, experiment, user_id)).encode("utf-8")
    point = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % sum(weights)
    return bisect.bisect_right(list(itertools.accumulate(weights)), point)
