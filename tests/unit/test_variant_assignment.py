"""A/B variants: the sticky assignment's stability and distribution, and the `variants` syntax."""

from __future__ import annotations

import collections

import pytest

from server.planner import DEFINITIONS_DIR, DefinitionError, Variant, assign_variant, parse_definition
from server.planner._variants import MAX_VARIANTS, parse_variants

USERS = [f"user-{i}" for i in range(20_000)]


def test_the_same_user_gets_the_same_variant_every_time_and_the_hash_never_changes() -> None:
    first = [assign_variant("job_discovery", "job_discovery@1.2.0", u, [50, 50]) for u in USERS[:500]]
    again = [assign_variant("job_discovery", "job_discovery@1.2.0", u, [50, 50]) for u in USERS[:500]]
    assert first == again
    # Pinned values: another process, another release, must hash the same users the same way
    # (a change here re-assigns every user of every running experiment).
    assert [assign_variant("job_discovery", "job_discovery@1.2.0", f"user-{i}", [50, 50]) for i in range(12)] == [
        PINNED[i] for i in range(12)
    ]


PINNED = [0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0]


def test_a_50_50_split_gives_each_variant_half_the_users() -> None:
    counts = collections.Counter(assign_variant("t", "t@1.0.0", u, [50, 50]) for u in USERS)
    assert counts.keys() == {0, 1}
    assert abs(counts[0] / len(USERS) - 0.5) < 0.015, counts


def test_unequal_weights_give_proportional_shares_and_only_the_weights_ratio_matters() -> None:
    counts = collections.Counter(assign_variant("t", "t@1.0.0", u, [1, 3, 6]) for u in USERS)
    for index, share in enumerate((0.1, 0.3, 0.6)):
        assert abs(counts[index] / len(USERS) - share) < 0.015, counts
    # Weights 10/30/60 are the same split as 1/3/6 but another modulus: the shares hold.
    scaled = collections.Counter(assign_variant("t", "t@1.0.0", u, [10, 30, 60]) for u in USERS)
    for index, share in enumerate((0.1, 0.3, 0.6)):
        assert abs(scaled[index] / len(USERS) - share) < 0.015, scaled


def test_another_experiment_or_type_reassigns_users_independently() -> None:
    base = [assign_variant("t", "t@1.0.0", u, [50, 50]) for u in USERS[:4000]]
    for other in (
        [assign_variant("t", "t@1.1.0", u, [50, 50]) for u in USERS[:4000]],
        [assign_variant("other", "t@1.0.0", u, [50, 50]) for u in USERS[:4000]],
    ):
        same = sum(a == b for a, b in zip(base, other, strict=True)) / len(base)
        assert 0.45 < same < 0.55, same


def test_a_single_weight_takes_every_user_and_bad_weights_are_refused() -> None:
    assert {assign_variant("t", "e", u, [7]) for u in USERS[:200]} == {0}
    for bad in ([], [0, 5], [5, -1]):
        with pytest.raises(ValueError):
            assign_variant("t", "e", "u", bad)


def test_variants_are_read_with_their_versions() -> None:
    assert parse_variants(
        "d", [{"name": "control", "weight": 50}, {"name": "fast", "weight": 50, "version": "1.1.0"}]
    ) == (
        Variant("control", 50, ""),
        Variant("fast", 50, "1.1.0"),
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "a"}, "variants must be a list"),
        ([{"name": "a", "weight": 1}], "from 2 to"),
        ([{"name": f"v{i}", "weight": 1} for i in range(MAX_VARIANTS + 1)], "from 2 to"),
        ([{"name": "a", "weight": 1}, "b"], "variants[1] must be a mapping"),
        ([{"name": "a", "weight": 0}, {"name": "b", "weight": 1}], "variants[0].weight must be an integer from 1"),
        ([{"name": "a", "weight": -5}, {"name": "b", "weight": 1}], "variants[0].weight"),
        ([{"name": "a", "weight": 1.5}, {"name": "b", "weight": 1}], "variants[0].weight"),
        ([{"name": "a", "weight": True}, {"name": "b", "weight": 1}], "variants[0].weight"),
        ([{"name": "a", "weight": 1}, {"name": "b"}], "variants[1].weight"),
        ([{"name": "a", "weight": 1}, {"name": "a", "weight": 1}], "variants[1].name 'a' is another variant's name"),
        ([{"name": "A b", "weight": 1}, {"name": "b", "weight": 1}], "variants[0].name must be a lower-case name"),
        ([{"weight": 1}, {"name": "b", "weight": 1}], "variants[0].name"),
        ([{"name": "a", "weight": 1, "version": 1.1}, {"name": "b", "weight": 1}], "variants[0].version must be"),
        ([{"name": "a", "weight": 1, "params": {}}, {"name": "b", "weight": 1}], "variants[0]: unknown key 'params'"),
    ],
)
def test_malformed_variants_are_refused_naming_the_variant_and_field(raw: object, message: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_variants("definition_yaml", raw)
    assert message in str(raised.value)


def test_a_definition_carries_its_variants() -> None:
    text = (DEFINITIONS_DIR / "job_discovery.yaml").read_text()
    text += "variants:\n  - {name: control, weight: 1}\n  - {name: fast, weight: 3, version: 1.1.0}\n"
    definition = parse_definition(text, "definition_yaml")
    assert definition.variants == (Variant("control", 1), Variant("fast", 3, "1.1.0"))
    assert parse_definition((DEFINITIONS_DIR / "job_discovery.yaml").read_text(), "x").variants == ()
