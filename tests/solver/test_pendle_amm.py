"""The exact Pendle AMM model and its cost lines in the program.

References: MarketMathCore's integer arithmetic written out here (1e18 fixed point, exp and ln in
60-digit decimals truncated toward zero, as the contract's LogExpMath agrees with them to 1 ulp), the
closed forms at a zero trade, and a brute-force search of the allocation. The real market's own swaps
are the reference in tests/adapters/test_pendle_market.py.
"""

from __future__ import annotations

import decimal
import math
from typing import Any

import numpy as np
import pytest

import bondfolio
from bondfolio.inputs.snapshot import PendleCurve
from bondfolio.solver.pendle_amm import PendleAmm
from tests.factories import opportunity, policy, snapshot

ONE = 10**18
YEAR = 365 * 86400
_D = decimal.Context(prec=60)

CURVE = {"model": "pendle", "total_pt": 400_000 * ONE, "total_sy": 380_000 * ONE, "py_index": 1_050_000_000_000_000_000,
         "sy_exchange_rate": 1_050_000_000_000_000_000, "scalar_root": 38_178_563_306_978_533_376,
         "ln_fee_rate_root": 2_995_508_979_798_479, "reserve_fee_percent": 80,
         "ln_implied_rate": 86_177_696_241_052_429, "expiry": 1_812_326_400, "timestamp": 1_812_326_400 - 150 * 86400,
         "decimals": 18}


# ----------------------------------------------------------------------------- the integer reference
def _tdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _exp(x: int) -> int:
    return int((_D.exp(decimal.Decimal(x) / ONE) * ONE).to_integral_value(rounding=decimal.ROUND_DOWN))


def _ln(x: int) -> int:
    return int((_D.ln(decimal.Decimal(x) / ONE) * ONE).to_integral_value(rounding=decimal.ROUND_DOWN))


def _div(a: int, b: int) -> int:
    return _tdiv(a * ONE, b)


def sy_in_for_pt(c: dict[str, Any], d: int) -> int:
    """MarketMathCore: the SY a buyer pays for exactly ``d`` PT (calcTrade with netPtToAccount = d)."""
    index, tau = c["py_index"], c["expiry"] - c["timestamp"]
    scalar = _tdiv(c["scalar_root"] * YEAR, tau)
    asset = c["total_sy"] * index // ONE
    pt = c["total_pt"]
    p0 = _div(pt, pt + asset)
    anchor = _exp(c["ln_implied_rate"] * tau // YEAR) - _div(_ln(_div(p0, ONE - p0)), scalar)
    fee = _exp(c["ln_fee_rate_root"] * tau // YEAR)
    p = _div(pt - d, pt + asset)
    rate = _div(_ln(_div(p, ONE - p)), scalar) + anchor
    pre = -_div(d, rate)
    to_account = pre - _tdiv(pre * (ONE - fee), ONE)  # pre-fee asset less the fee (both negative)
    return -(-((-to_account) * ONE // index) if to_account < 0 else to_account * ONE // index)


def test_zero_trade_closed_forms() -> None:
    curve = PendleCurve(**CURVE)
    amm = PendleAmm.of(curve)
    tau = (curve.expiry - curve.timestamp) / YEAR
    assert amm.price == pytest.approx(math.exp(-curve.ln_implied_rate / ONE * tau), rel=1e-15)
    assert float(amm.exchange_rate(0.0)) == pytest.approx(amm.implied, rel=1e-15)
    fee = math.exp(curve.ln_fee_rate_root / ONE * tau)
    # the first unit bought costs the fee on top of the price; the first sold gets the price less it
    assert amm.cost_slope(0.0, 1.0, 1) == pytest.approx(fee - 1, rel=1e-9)
    assert amm.cost_slope(0.0, 1.0, -1) == pytest.approx(1 / fee - 1, rel=1e-9)
    assert float(amm.cost(0.0, 1.0)) == 0.0


@pytest.mark.parametrize("pt", [1.0, 1_000.0, 50_000.0, 200_000.0, 300_000.0])
def test_buy_cost_equals_market_math(pt: float) -> None:
    # the float model against MarketMathCore in integers: SY paid for exactly d PT (index 1.05, so SY = asset/1.05)
    amm = PendleAmm.of(PendleCurve(**CURVE))
    d = int(pt * ONE)
    expected = sy_in_for_pt(CURVE, d) / ONE * CURVE["py_index"] / ONE  # in asset
    assert float(amm.asset_in_for_pt(pt)) == pytest.approx(expected, rel=1e-12)
    assert amm.pt_out_for_asset(float(amm.asset_in_for_pt(pt))) == pytest.approx(pt, rel=1e-12)


def test_limits_of_the_pool() -> None:
    amm = PendleAmm.of(PendleCurve(**CURVE))
    # at the most PT out the post-fee exchange rate is one (less the 0.1 % headroom); selling stops at 96 % PT
    top = amm.max_pt_out() / 0.999
    assert float(amm.exchange_rate(top)) / amm.fee == pytest.approx(1.0, abs=1e-9)
    assert (amm.pt + amm.max_pt_in()) / (amm.pt + amm.asset) == pytest.approx(0.96, rel=1e-12)
    with pytest.raises(ValueError, match="more PT than the market can give"):
        amm.pt_out_for_asset(10 * amm.asset)


def test_cost_lines_hold_their_bound_and_never_understate() -> None:
    amm = PendleAmm.of(PendleCurve(**CURVE))
    lo, hi = -0.9 * amm.max_pt_in() * amm.price, 0.99 * amm.max_pt_out() * amm.price
    tol, floor = 2.5e-7, 1_000_000.0
    knots, costs, bound = amm.cost_lines(lo, hi, 1.0, tol, floor)
    x = np.linspace(lo, hi, 100_001)
    exact = amm.cost(x, 1.0)
    assert np.all(np.diff(exact, 2) >= -1e-7 * np.abs(exact[1:-1]).max())  # convex on the grid
    gap = np.interp(x, knots, costs) - exact
    assert gap.min() >= -1e-9 * np.abs(x).max()  # chords of a convex function: never below (round-off only)
    assert np.all(gap <= tol * (np.abs(x) + floor) + 1e-9 * np.abs(x).max())
    assert gap.max() <= bound
    assert 0.0 in knots  # the fee's kink is a knot


def test_the_program_finds_the_brute_force_optimum() -> None:
    # one PT at ~9 % against a 6 % pool, one-off costs over 30 days: the program's choice is the grid's best
    # within the lines' tolerance (the grid's step is 3.9e-7 of NAV)
    nav = 1_000_000.0
    curve = PendleCurve(**CURVE)
    amm = PendleAmm.of(curve)
    pt = opportunity("pt", math.expm1(curve.ln_implied_rate / ONE), protocol="pendle", kind="fixed",
                     duration=150 / 365, price=amm.price, rate_curve=CURVE)
    snap = snapshot([pt, opportunity("pool", 0.06)])
    pol = policy({"kind": "budget"}, nav=nav)
    pol["objective"]["cost_horizon_days"] = 30.0
    decision = bondfolio.allocate(snap, pol)
    w = decision.weights["pt"]
    scale = 365.0 / 30.0

    def objective(weight: np.ndarray) -> np.ndarray:
        return np.asarray(pt["apy"] * weight + 0.06 * (1 - weight) - scale * amm.cost(weight * nav, 1.0) / nav)

    grid = np.linspace(0.0, amm.max_pt_out() * amm.price / nav, 1_000_001)  # what the market can sell
    best = grid[np.argmax(objective(grid))]
    assert 0.01 < best < 0.99  # an interior optimum: the price impact balances the spread
    # the lines are within rate_impact_tolerance_bp (0.01 bp) of the exact objective, so the program's
    # choice is within twice that of the best (measured: 3e-8)
    assert float(objective(np.array(w))) >= float(objective(np.array(best))) - 2 * 0.01e-4
    impact = decision.record.rate_impact
    assert impact is not None
    (row,) = [r for r in impact["amm"] if r["id"] == "pt"]
    assert row["model"] == "pendle"
    assert row["slippage_cost"] == pytest.approx(float(amm.cost(w * nav, 1.0)), rel=1e-9)
