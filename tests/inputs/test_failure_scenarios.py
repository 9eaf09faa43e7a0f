"""Failure model and scenario sets, against numbers worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bondfolio.errors import InputError
from bondfolio.inputs import Kind, Universe, load_snapshot
from bondfolio.inputs.scenarios import ScenarioSettings, build_scenarios, cvar, load_scenarios
from tests.factories import opportunity, snapshot

NAV = 1_000_000.0


def book(failure: dict[str, Any] | None = None) -> dict[str, Any]:
    opps = [
        opportunity("a", 0.05, protocol="pa", risk_score=0.4, tags=["oracle:x", "issuer:circle"]),
        opportunity("b", 0.04, protocol="pb", risk_score=0.1, tags=["oracle:x"]),
        opportunity("c", 0.06, protocol="pc", risk_score=0.2, asset="USDe", kind="fixed", duration=1.5,
                    maturity="2027-11-20T00:00:00Z"),
        opportunity("h", 0.0, protocol="perps", kind="hedge", tier="hedge", duration=-2.0, risk_score=0.3,
                    exposures={"delta:USDe": -1.0}, carry=0.01, margin=0.1),
    ]
    snap = snapshot(opps)
    if failure is not None:
        snap["failure"] = failure
    return snap


def universe(failure: dict[str, Any] | None = None) -> Universe:
    return Universe.build(load_snapshot(book(failure)), None, NAV)


FAILURE = {"sources": [{"group": "oracle:x", "probability": 0.01, "loss_given_failure": 0.3},
                       {"group": "protocol:pc", "probability": 0.02, "loss_given_failure": 0.8}],
           "rule": {"probability_at_score_1": 0.05, "loss_given_failure": 0.5}}


def test_sources_and_rule_by_hand() -> None:
    ev = universe(FAILURE).failure
    assert ev is not None
    # explicit first, then one rule source per protocol not named (pa: 0.05 x 0.4, pb: 0.05 x 0.1); the
    # hedge protocol 'perps' has no deposit and gets none
    assert ev.names == ["oracle:x", "protocol:pc", "protocol:pa", "protocol:pb"]
    assert ev.origin == ["explicit", "explicit", "rule", "rule"]
    np.testing.assert_allclose(ev.probability, [0.01, 0.02, 0.02, 0.005], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ev.loss_given_failure, [0.3, 0.8, 0.5, 0.5])
    assert ev.members.tolist() == [[True, True, False, False], [False, False, True, False],
                                   [True, False, False, False], [False, True, False, False]]
    # a: 1 - (1 - 0.01 * 0.3)(1 - 0.02 * 0.5); b: 1 - (1 - 0.003)(1 - 0.0025); c: 0.02 * 0.8; hedge 0
    expected = [1 - 0.997 * 0.99, 1 - 0.997 * 0.9975, 0.016, 0.0]
    np.testing.assert_allclose(universe(FAILURE).expected_loss_rate, expected, rtol=1e-14, atol=0)


def test_no_failure_model_means_no_failure_risk() -> None:
    u = universe()
    assert u.failure is None
    assert not u.expected_loss_rate.any()


@pytest.mark.parametrize(("group", "message"), [
    ("oracle:nope", "failure source 'oracle:nope' matches no deposit"),
    ("bridge:wormhole", "'bridge' is neither one of"),
    ("protocol:perps", "failure source 'protocol:perps' matches no deposit"),
])
def test_bad_sources_named(group: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_snapshot(book({"sources": [{"group": group, "probability": 0.01, "loss_given_failure": 0.5}]}))


def test_duplicate_source_rejected() -> None:
    src = {"group": "oracle:x", "probability": 0.01, "loss_given_failure": 0.5}
    with pytest.raises(InputError, match=r"failure sources \['oracle:x'\] appear twice"):
        load_snapshot(book({"sources": [src, src]}))


def test_hedge_fields_only_on_hedges() -> None:
    snap = book()
    snap["opportunities"][0]["margin"] = 0.1
    with pytest.raises(InputError, match="carry, margin and side are for hedges"):
        load_snapshot(snap)


def test_scenario_losses_by_hand() -> None:
    u = universe(FAILURE)
    settings = ScenarioSettings(rate_shocks_bp=(200.0,), depegs=({"asset": "USDe", "drop": 0.1, "probability": 0.03},),
                                custom=({"name": "pendle hack", "probability": 0.004,
                                         "losses": {"protocol:pc": 0.5, "c": 0.9}},), samples=0,
                                stress_probability=0.01)
    s = build_scenarios(u, settings)
    assert s.names == ["failure:oracle:x", "failure:protocol:pc", "failure:protocol:pa", "failure:protocol:pb",
                       "rate:+200bp", "depeg:USDe", "freeze", "pendle hack", "no event"]
    w = np.array([0.3, 0.2, 0.5, 0.4])
    losses = dict(zip(s.names, s.portfolio_losses(w), strict=True))
    assert losses["failure:oracle:x"] == pytest.approx(0.3 * (0.3 + 0.2), abs=1e-15)
    assert losses["failure:protocol:pc"] == pytest.approx(0.8 * 0.5, abs=1e-15)
    assert losses["failure:protocol:pa"] == pytest.approx(0.5 * 0.3, abs=1e-15)
    # +200 bp: c (1.5 y) loses 3 %, the hedge (-2 y on 40 % notional) gains 4 % x 0.4
    assert losses["rate:+200bp"] == pytest.approx(0.02 * (1.5 * 0.5 - 2.0 * 0.4), abs=1e-15)
    # USDe -10 %: c loses 10 %, the short perp (delta -1 on 40 %) gains 10 % of 0.4
    assert losses["depeg:USDe"] == pytest.approx(0.1 * 0.5 - 0.1 * 0.4, abs=1e-15)
    # freeze: floating deposits a and b sell at a 2 % discount; the fixed c and the hedge are not frozen
    assert losses["freeze"] == pytest.approx(0.02 * 0.5, abs=1e-15)
    assert losses["pendle hack"] == pytest.approx(0.9 * 0.5, abs=1e-15)  # the larger of the two matches
    assert losses["no event"] == 0.0
    explicit = [0.01, 0.02, 0.02, 0.005, 0.01, 0.03, 0.01, 0.004]
    np.testing.assert_allclose(s.probability, [*explicit, 1 - sum(explicit)], rtol=0, atol=1e-15)


def test_samples_are_seeded_and_have_the_model_covariance() -> None:
    u = universe()
    a = build_scenarios(u, ScenarioSettings(samples=50, seed=7, failures=False, rate_shocks_bp=(), freeze=None))
    b = build_scenarios(u, ScenarioSettings(samples=50, seed=7, failures=False, rate_shocks_bp=(), freeze=None))
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_allclose(a.probability, 1 / 50)
    big = build_scenarios(u, ScenarioSettings(samples=200_000, seed=1, failures=False, rate_shocks_bp=(),
                                              freeze=None, horizon_years=0.25))
    cov = np.cov(big.losses, rowvar=False)
    # diagonal 1e-4 a year, a quarter: 2.5e-5; the sample variance's standard error is sqrt(2/N) relative
    np.testing.assert_allclose(np.diag(cov), 2.5e-5, rtol=6 * np.sqrt(2 / 200_000))


def test_cvar_by_sorting_matches_hand_values() -> None:
    losses = np.array([0.1, 0.5, 0.2, 0.0])
    prob = np.array([0.25, 0.05, 0.1, 0.6])
    # worst 10 %: all of 0.5 (0.05) and half of 0.2's 0.1
    value, var = cvar(losses, prob, 0.9)
    assert value == pytest.approx((0.05 * 0.5 + 0.05 * 0.2) / 0.1, abs=1e-15)
    assert var == 0.2
    # worst 40 %: 0.5 (0.05), 0.2 (0.1), 0.1 (0.25)
    assert cvar(losses, prob, 0.6)[0] == pytest.approx((0.025 + 0.02 + 0.025) / 0.4, abs=1e-15)


@pytest.mark.parametrize(("settings", "message"), [
    ({"depegs": [{"asset": "DAI"}]}, "depeg of 'DAI': no opportunity is in that asset"),
    ({"custom": [{"name": "x", "probability": 0.1, "losses": {"oracle:nope": 0.1}}]},
     "custom scenario 'x': 'oracle:nope' is neither"),
    ({"stress_probability": 0.5}, r"probabilities add up to 1\.555 > 1 \(failure:oracle:x=0\.01"),
])
def test_scenario_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_scenarios(universe(FAILURE), load_scenarios(settings))


def test_every_group_key_of_the_vocabulary_names_failure_sources_and_scenarios() -> None:
    # the group vocabulary is one: "tier:yield" works for a failure source and a custom scenario as it
    # does for group_cap by = "tier" (c is the only yield-tier deposit; the hedge is never a member)
    failure = {"sources": [{"group": "tier:yield", "probability": 0.02, "loss_given_failure": 0.5}], "rule": None}
    snap = book(failure)
    snap["opportunities"][2]["tier"] = "yield"
    u = Universe.build(load_snapshot(snap), None, NAV)
    assert u.failure is not None and u.failure.names == ["tier:yield"]
    assert u.failure.members.tolist() == [[False, False, True, False]]
    assert u.expected_loss_rate.tolist() == pytest.approx([0.0, 0.0, 0.01, 0.0], abs=1e-15)
    losses = {"tier:yield": 0.2, "kind:floating": 0.05}
    settings = load_scenarios({"failures": False, "rate_shocks_bp": [], "freeze": False, "samples": 0,
                               "custom": [{"name": "yield book", "probability": 0.1, "losses": losses}]})
    s = build_scenarios(u, settings)
    assert s.names == ["yield book", "no event"]
    assert s.losses[0].tolist() == pytest.approx([0.05, 0.05, 0.2, 0.0])


def test_freeze_kinds_are_opportunity_kinds() -> None:
    with pytest.raises(InputError, match=r"freeze\.Freeze\.kinds\.0.*'floating', 'fixed', 'vault' or 'hedge' "
                                         r"\(got 'flaoting'\)"):
        load_scenarios({"freeze": {"kinds": ["flaoting"]}})


def test_freeze_can_be_switched_off_from_toml(tmp_path: Path) -> None:
    # TOML has no null: false turns the freeze off, true keeps its defaults
    path = tmp_path / "scenarios.toml"
    path.write_text("freeze = false\nsamples = 0\n")
    assert load_scenarios(path).freeze is None
    path.write_text("freeze = true\n")
    on = load_scenarios(path).freeze
    assert on is not None and on.haircut == 0.02 and on.kinds == (Kind.floating, Kind.vault)
    s = build_scenarios(universe(FAILURE), load_scenarios({"freeze": False, "samples": 0}))
    assert "freeze" not in s.names
