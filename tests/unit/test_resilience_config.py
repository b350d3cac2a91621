"""`baton serve`'s breaker and retry budget settings: flags over the --agents YAML's `resilience:`."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents_clients import BreakerConfig, RetryBudgetConfig
from server.cli._parser import build_parser
from server.cli._resilience import resilience_from
from server.config import ConfigError, agent_endpoints, agents_resilience


def _args(*flags: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["serve", *flags])


def test_without_flags_or_yaml_the_defaults_hold() -> None:
    assert resilience_from(_args()) == (BreakerConfig(), RetryBudgetConfig())


def test_flags_override_the_yaml_which_overrides_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(
        "agents:\n  default: 127.0.0.1:50061\n"
        "resilience:\n  breaker: {failure_rate: 0.6, reset_timeout: 20}\n  retry_budget: {ratio: 0.3}\n"
    )
    assert agent_endpoints(str(path))["analytics"] == ["127.0.0.1:50061"]
    breaker, budget = resilience_from(_args("--breaker-reset", "5", "--no-retry-budget"), agents_resilience(str(path)))
    assert (breaker.failure_rate, breaker.reset_timeout, breaker.window) == (0.6, 5.0, 100)
    assert (budget.ratio, budget.enabled) == (0.3, False)


@pytest.mark.parametrize(
    ("flags", "section", "message"),
    [
        (("--breaker-minimum-calls", "200"), {}, "breaker.minimum_calls"),
        (("--retry-budget-window", "0"), {}, "retry_budget.window"),
        ((), {"breaker": {"fail_maxx": 3}}, "resilience.breaker.fail_maxx: unknown"),
        ((), {"breaker": {"fail_max": "ten"}}, "resilience.breaker.fail_max: expected a number"),
        ((), {"breakers": {}}, "resilience.breakers"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(flags: tuple[str, ...], section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        resilience_from(_args(*flags), section)
