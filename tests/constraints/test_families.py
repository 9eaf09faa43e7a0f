"""Each constraint family checked on hand-made weights with numbers worked out by hand (no solver)."""

from __future__ import annotations

import numpy as np
import pytest

from bondfolio.constraints import Point
from bondfolio.errors import InputError
from bondfolio.inputs import Holdings, Universe, load_policy, load_snapshot
from tests.factories import opportunity, policy, snapshot

NAV = 1_000_000.0


def universe(holdings: Holdings | None = None) -> Universe:
    opps = [
        opportunity("a", 0.05, protocol="aave-v3", chain="ethereum", risk_score=0.1, available_liquidity=200_000.0,
                    tvl=4_000_000.0, tags=["oracle:chainlink", "issuer:circle"]),
        opportunity("b", 0.06, protocol="aave-v3", chain="base", risk_score=0.2, available_liquidity=50_000.0,
                    tvl=1_000_000.0, tags=["oracle:chainlink"], exposures={"delta:ETH": 0.5}),
        opportunity("c", 0.08, protocol="pendle", kind="fixed", duration=0.5, risk_score=0.4, tier="yield",
                    withdrawal_delay_days=3.0, tvl=500_000.0, tags=["oracle:pendle-twap", "issuer:ethena"]),
        opportunity("h", -0.01, protocol="swaps", kind="hedge", tier="hedge", duration=-2.0, risk_score=0.3),
    ]
    cov = np.diag([1e-4, 4e-4, 9e-4, 1e-4])
    cov[0, 1] = cov[1, 0] = 1e-4
    return Universe.build(load_snapshot(snapshot(opps, cov=cov)), holdings, NAV)


W = np.array([0.3, 0.25, 0.4, -0.05])
X = Point(W, 0.05)


def rows(kind: dict, u: Universe | None = None, x: Point = X) -> dict[str, tuple[float, float, float]]:
    u = u or universe()
    (c,) = load_policy(policy(kind)).constraints
    return {r.row: (r.value, r.lower, r.upper) for r in c.check(x, u)}  # type: ignore[attr-defined]


def test_budget_excludes_hedges_and_counts_cash() -> None:
    out = rows({"kind": "budget", "allow_cash": True, "max_cash": 0.1})
    assert out["invested"] == pytest.approx((1.0, 1.0, 1.0))  # 0.3 + 0.25 + 0.4 + cash 0.05
    assert out["cash"] == pytest.approx((0.05, 0.0, 0.1))


def test_budget_without_cash_forbids_it() -> None:
    (c,) = load_policy(policy({"kind": "budget"})).constraints
    res = {r.row: r for r in c.check(X, universe())}  # type: ignore[attr-defined]
    assert res["cash"].upper == 0.0 and res["cash"].violation == pytest.approx(0.05)


def test_max_weight_with_selection_and_limits() -> None:
    out = rows({"kind": "max_weight", "max": 0.35, "select": {"protocol": "aave-v3"}, "limits": {"b": 0.2}})
    assert set(out) == {"a", "b"}
    assert out["a"] == (0.3, -np.inf, 0.35) and out["b"] == (0.25, -np.inf, 0.2)


def test_min_weight_on_hedge_bounds_short_notional() -> None:
    out = rows({"kind": "min_weight", "limits": {"h": -0.1}})
    assert out == {"h": (-0.05, -0.1, np.inf)}


def test_group_cap_by_protocol() -> None:
    out = rows({"kind": "group_cap", "by": "protocol", "max": 0.5, "limits": {"pendle": 0.3}})
    assert out["protocol=aave-v3"] == pytest.approx((0.55, -np.inf, 0.5))
    assert out["protocol=pendle"] == pytest.approx((0.4, -np.inf, 0.3))
    assert "protocol=swaps" not in out  # hedges are not deposits


def test_group_cap_by_tag_key() -> None:
    out = rows({"kind": "group_cap", "by": "oracle", "max": 0.6})
    assert out["oracle=chainlink"][0] == pytest.approx(0.55)
    assert out["oracle=pendle-twap"][0] == pytest.approx(0.4)


def test_group_floor_by_tier() -> None:
    out = rows({"kind": "group_floor", "by": "tier", "limits": {"core": 0.6}})
    assert out == {"tier=core": pytest.approx((0.55, 0.6, np.inf))}


def test_duration_band_includes_hedge() -> None:
    out = rows({"kind": "duration", "target": 0.2, "tolerance": 0.1})
    # 0.4 * 0.5 + (-0.05) * (-2) = 0.3
    assert out["portfolio"] == pytest.approx((0.3, 0.1, 0.3))


def test_exposure_band_from_exposures() -> None:
    out = rows({"kind": "exposure", "attribute": "delta:ETH", "max": 0.1})
    assert out["delta:ETH"] == pytest.approx((0.125, -np.inf, 0.1))


def test_exposure_unknown_attribute() -> None:
    with pytest.raises(InputError, match=r"attribute 'delta:BTC' is neither a numeric field nor an exposure"):
        rows({"kind": "exposure", "attribute": "delta:BTC", "max": 0.1})


def test_liquidity_share_bound_in_nav_fraction() -> None:
    out = rows({"kind": "liquidity_share", "max_share": 0.5, "select": {"ids": ["a", "b"]}})
    # a: 0.5 * 200k / 1M = 0.1 ; b: 0.5 * 50k / 1M = 0.025
    assert out == {"a": (0.3, -np.inf, pytest.approx(0.1)), "b": (0.25, -np.inf, pytest.approx(0.025))}


def test_liquidity_share_missing_liquidity_named() -> None:
    with pytest.raises(InputError, match=r"opportunities 'c' have no 'available_liquidity'"):
        rows({"kind": "liquidity_share", "max_share": 0.5})


def test_tvl_share() -> None:
    out = rows({"kind": "tvl_share", "max_share": 0.1})
    assert out["c"] == (0.4, -np.inf, pytest.approx(0.05))
    assert "h" not in out


def test_liquidity_buffer_caps_by_available_liquidity() -> None:
    # horizon 1 day: a (min(0.3, 0.2) = 0.2) + b (min(0.25, 0.05) = 0.05) + cash 0.05 = 0.30; c waits 3 days
    assert rows({"kind": "liquidity_buffer", "horizon_days": 1, "min": 0.4})["1d"] == pytest.approx((0.3, 0.4, np.inf))
    # horizon 3 days: c has no available_liquidity figure, counts in full: 0.30 + 0.4
    assert rows({"kind": "liquidity_buffer", "horizon_days": 3, "min": 0.4})["3d"][0] == pytest.approx(0.7)
    uncapped = rows({"kind": "liquidity_buffer", "horizon_days": 1, "min": 0.4, "cap_by_available_liquidity": False})
    assert uncapped["1d"][0] == pytest.approx(0.6)


def test_risk_budget_counts_hedge_notional() -> None:
    out = rows({"kind": "risk_budget", "max": 0.2})
    # 0.3*0.1 + 0.25*0.2 + 0.4*0.4 + |-0.05|*0.3 = 0.03 + 0.05 + 0.16 + 0.015
    assert out["portfolio"] == pytest.approx((0.255, -np.inf, 0.2))


def test_max_volatility_matches_dense_quadratic_form() -> None:
    u = universe()
    cov = np.asarray(u.snapshot.risk.covariance)
    expected = float(np.sqrt(W @ cov @ W))
    assert rows({"kind": "max_volatility", "max": 0.02}, u)["portfolio"][0] == pytest.approx(expected, rel=1e-12)


def test_turnover_against_holdings() -> None:
    u = universe(Holdings(positions={"a": 500_000.0, "c": 100_000.0}, cash=400_000.0))
    # |0.3-0.5| + |0.25-0| + |0.4-0.1| + |-0.05-0| = 0.2 + 0.25 + 0.3 + 0.05
    assert rows({"kind": "turnover", "max": 0.5}, u)["portfolio"] == pytest.approx((0.8, -np.inf, 0.5))


def test_violation_and_slack() -> None:
    (c,) = load_policy(policy({"kind": "max_weight", "max": 0.35})).constraints
    res = {r.row: r for r in c.check(X, universe())}  # type: ignore[attr-defined]
    assert res["c"].violation == pytest.approx(0.05) and res["c"].slack == pytest.approx(-0.05)
    assert res["a"].violation == 0.0 and res["a"].slack == pytest.approx(0.05)
