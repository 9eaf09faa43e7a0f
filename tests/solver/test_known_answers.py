"""Answers known in closed form or by hand: minimum variance, yield-ordering LP, binding bands, duals."""

from __future__ import annotations

import numpy as np
import pytest

import bondfolio
from bondfolio.errors import CheckFailedError, InfeasibleError, UnboundedError
from bondfolio.inputs import Universe, load_policy, load_snapshot
from bondfolio.solver import Program
from tests.factories import opportunity, policy, snapshot

# Weights agree with closed forms to 1e-7 (the check tolerance; Clarabel runs at 1e-9 gap/feasibility).
WTOL = 1e-7
# Duals (APY decimal per unit of bound) agree to 1e-6: multipliers converge more slowly than primals.
DTOL = 1e-6


def test_two_asset_minimum_variance_closed_form() -> None:
    s1, s2, rho = 0.02, 0.03, 0.3
    cov = np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])
    snap = snapshot([opportunity("a", 0.05), opportunity("b", 0.05)], cov=cov)
    d = bondfolio.allocate(snap, policy(gamma=10.0))
    w1 = (cov[1, 1] - cov[0, 1]) / (cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert d.weights["a"] == pytest.approx(w1, abs=WTOL)
    assert d.weights["b"] == pytest.approx(1 - w1, abs=WTOL)
    assert d.metrics["volatility"] == pytest.approx(np.sqrt(np.array([w1, 1 - w1]) @ cov @ np.array([w1, 1 - w1])))


def test_two_asset_mean_variance_closed_form() -> None:
    # maximize mu'w - (g/2) w'Sw  s.t. w1 + w2 = 1  =>  w1 = ((mu1 - mu2)/g + s22 - s12) / (s11 + s22 - 2 s12)
    cov = np.array([[1e-4, 2e-5], [2e-5, 4e-4]])
    mu, gamma = (0.06, 0.05), 200.0
    d = bondfolio.allocate(snapshot([opportunity("a", mu[0]), opportunity("b", mu[1])], cov=cov), policy(gamma=gamma))
    w1 = ((mu[0] - mu[1]) / gamma + cov[1, 1] - cov[0, 1]) / (cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert 0 < w1 < 1
    assert d.weights["a"] == pytest.approx(w1, abs=WTOL)
    objective = np.array([w1, 1 - w1]) @ mu - gamma / 2 * np.array([w1, 1 - w1]) @ cov @ np.array([w1, 1 - w1])
    assert d.metrics["objective"] == pytest.approx(objective, abs=1e-10)
    assert d.metrics["solver_objective"] == pytest.approx(objective, abs=1e-8)


def test_pure_yield_lp_follows_yield_ordering_with_duals() -> None:
    apys = {"a": 0.03, "b": 0.07, "c": 0.05, "d": 0.06, "e": 0.04}
    snap = snapshot([opportunity(k, v) for k, v in apys.items()])
    d = bondfolio.allocate(snap, policy({"kind": "max_weight", "max": 0.3}))
    # best three get the cap, the fourth gets the rest
    expected = {"b": 0.3, "d": 0.3, "c": 0.3, "e": 0.1, "a": 0.0}
    for key, value in expected.items():
        assert d.weights[key] == pytest.approx(value, abs=WTOL)
    assert d.metrics["expected_apy"] == pytest.approx(0.3 * (0.07 + 0.06 + 0.05) + 0.1 * 0.04, abs=WTOL)
    rows = {(r["kind"], r["row"]): r for r in d.constraint_rows}
    # the marginal asset (e, 4 %) prices the budget; each cap is worth its yield over the marginal one
    assert rows[("budget", "invested")]["dual"] == pytest.approx(0.04, abs=DTOL)
    assert rows[("max_weight", "b")]["dual"] == pytest.approx(0.03, abs=DTOL)
    assert rows[("max_weight", "c")]["dual"] == pytest.approx(0.01, abs=DTOL)
    assert rows[("max_weight", "b")]["binding"] and not rows[("max_weight", "e")]["binding"]
    assert rows[("long_only", "a")]["dual"] == pytest.approx(-0.01, abs=DTOL)  # forcing a in costs 4 % - 3 %


def test_binding_duration_band() -> None:
    snap = snapshot([opportunity("float", 0.04), opportunity("pt", 0.06, kind="fixed", duration=1.0)])
    d = bondfolio.allocate(snap, policy({"kind": "duration", "target": 0.2, "tolerance": 0.1}))
    assert d.weights["pt"] == pytest.approx(0.3, abs=WTOL)
    assert d.metrics["duration"] == pytest.approx(0.3, abs=WTOL)
    (row,) = [r for r in d.constraint_rows if r["kind"] == "duration"]
    assert row["binding"] and row["upper"] == pytest.approx(0.3)
    assert row["dual"] == pytest.approx(0.02, abs=DTOL)  # one more year of duration moves 1 NAV into the PT


def test_binding_lower_duration_band_forces_lower_yield() -> None:
    snap = snapshot([opportunity("float", 0.06), opportunity("pt", 0.04, kind="fixed", duration=2.0)])
    d = bondfolio.allocate(snap, policy({"kind": "duration", "min": 0.5}))
    assert d.weights["pt"] == pytest.approx(0.25, abs=WTOL)
    (row,) = [r for r in d.constraint_rows if r["kind"] == "duration"]
    assert row["dual"] == pytest.approx(-0.01, abs=DTOL)  # raising the floor by 1 y costs 2 % / 2 y


def test_group_cap_and_cash() -> None:
    snap = snapshot([opportunity("a", 0.05, protocol="p"), opportunity("b", 0.06, protocol="p"),
                     opportunity("c", 0.02, protocol="q")])
    pol = policy({"kind": "budget", "allow_cash": True}, {"kind": "group_cap", "by": "protocol", "max": 0.6},
                 objective={"cash_apy": 0.03})
    d = bondfolio.allocate(snap, pol)
    # p is capped at 0.6 (all in b); the rest goes to cash (3 %) rather than c (2 %)
    assert d.weights["b"] == pytest.approx(0.6, abs=WTOL)
    assert d.cash == pytest.approx(0.4, abs=WTOL)
    assert d.metrics["expected_apy"] == pytest.approx(0.6 * 0.06 + 0.4 * 0.03, abs=WTOL)


def test_liquidity_buffer_binding() -> None:
    snap = snapshot([opportunity("liquid", 0.04), opportunity("locked", 0.06, withdrawal_delay_days=7.0)])
    d = bondfolio.allocate(snap, policy({"kind": "liquidity_buffer", "horizon_days": 1, "min": 0.35}))
    assert d.weights["liquid"] == pytest.approx(0.35, abs=WTOL)
    assert d.metrics["liquidity_buffer"]["1d"] == pytest.approx(0.35, abs=WTOL)


def test_trades_against_holdings_and_tokens() -> None:
    snap = snapshot([opportunity("a", 0.04, price=2.0), opportunity("b", 0.06)])
    holdings = {"positions": {"a": 800.0}, "cash": 200.0}
    d = bondfolio.allocate(snap, policy({"kind": "max_weight", "max": 0.7}, nav=None), holdings)
    frame = d.to_frame()
    assert d.universe.nav == 1000.0
    assert frame.loc["b", "amount"] == pytest.approx(700.0, abs=1e-4)
    assert frame.loc["a", "trade_amount"] == pytest.approx(300.0 - 800.0, abs=1e-4)
    assert frame.loc["a", "tokens"] == pytest.approx(150.0, abs=1e-4)  # 300 base at price 2
    trades = {t["id"]: t for t in d.to_dict()["trades"]}
    assert trades["a"]["side"] == "sell" and trades["b"]["side"] == "buy"


def test_trading_cost_keeps_position_when_gain_is_small() -> None:
    snap = snapshot([opportunity("held", 0.0500), opportunity("new", 0.0505)])
    holdings = {"positions": {"held": 1000.0}}
    cheap = bondfolio.allocate(snap, policy(nav=None, objective={"trading_cost_bp": 1.0}), holdings)
    dear = bondfolio.allocate(snap, policy(nav=None, objective={"trading_cost_bp": 10.0}), holdings)
    # switching gains 5 bp of yield; a 1 bp cost on each side (2 bp) is worth it, 10 bp (20 bp) is not
    assert cheap.weights["new"] == pytest.approx(1.0, abs=WTOL)
    assert dear.weights["held"] == pytest.approx(1.0, abs=WTOL)
    assert cheap.metrics["trading_cost"] == pytest.approx(2 * 1e-4, abs=1e-9)


def test_turnover_limit_binding() -> None:
    snap = snapshot([opportunity("held", 0.04), opportunity("new", 0.06)])
    d = bondfolio.allocate(snap, policy({"kind": "turnover", "max": 0.5}, nav=None), {"positions": {"held": 1.0}})
    assert d.weights["new"] == pytest.approx(0.25, abs=WTOL)  # sell 0.25, buy 0.25
    assert d.metrics["turnover"] == pytest.approx(0.5, abs=WTOL)


def test_infeasible_policy_raises() -> None:
    snap = snapshot([opportunity("a", 0.05), opportunity("b", 0.04)])
    with pytest.raises(InfeasibleError, match=r"policy 'test' is infeasible: no allocation satisfies all of its "
                                              r"constraints together"):
        bondfolio.allocate(snap, policy({"kind": "max_weight", "max": 0.4}))


def test_unbounded_hedge_raises() -> None:
    snap = snapshot([opportunity("a", 0.05),
                     opportunity("h", 0.01, kind="hedge", tier="hedge", duration=-1.0)], cov=np.zeros((2, 2)))
    with pytest.raises(UnboundedError, match=r"unbounded: .*hedges \['h'\] have no bound"):
        bondfolio.allocate(snap, policy())


def test_fallback_order_recorded_and_check_enforced() -> None:
    snap = snapshot([opportunity("a", 0.05), opportunity("b", 0.04)])
    pol = policy({"kind": "max_weight", "max": 0.6}, solver={"order": ["NOT_A_SOLVER", "CLARABEL"]})
    d = bondfolio.allocate(snap, pol)
    attempts = d.to_dict()["solver"]["attempts"]
    assert [a["solver"] for a in attempts] == ["NOT_A_SOLVER", "CLARABEL"]
    assert attempts[0]["status"] == "not_installed" and attempts[1]["accepted"]
    # a check tolerance no floating-point answer meets: every solver is rejected, never silently accepted
    strict = policy({"kind": "max_weight", "max": 0.6},
                    solver={"order": ["CLARABEL", "SCS"], "check_tolerance": 1e-300})
    with pytest.raises(CheckFailedError, match=r"every solver's answer violated a constraint") as info:
        bondfolio.allocate(snap, strict)
    # each solver is tried again with tighter settings before the next one
    assert [a["solver"] for a in info.value.attempts] == ["CLARABEL", "CLARABEL", "SCS", "SCS"]
    assert info.value.attempts[0]["detail"].endswith("retrying with tighter settings")


def test_dpp_resolve_matches_fresh_solve() -> None:
    cov = np.array([[1e-4, 2e-5], [2e-5, 4e-4]])
    snap = load_snapshot(snapshot([opportunity("a", 0.06), opportunity("b", 0.05)], cov=cov))
    pol = load_policy(policy({"kind": "max_weight", "max": 0.99}, gamma=200.0))
    program = Program(Universe.build(snap, None, pol.nav), pol)
    first = program.solve(reuse=True)
    program.update(risk_aversion=1000.0)
    second = program.solve(reuse=True)
    fresh = bondfolio.allocate(snap, pol.model_copy(update={"objective": pol.objective.model_copy(
        update={"risk_aversion": 1000.0})}))
    assert np.allclose(second.point.w, fresh.weights.to_numpy(), atol=WTOL)
    # closed form (see the mean-variance test): w1 = ((mu1 - mu2)/g + s22 - s12) / (s11 + s22 - 2 s12)
    assert first.point.w[0] == pytest.approx((0.01 / 200 + 3.8e-4) / 4.6e-4, abs=WTOL)
    assert second.point.w[0] == pytest.approx((0.01 / 1000 + 3.8e-4) / 4.6e-4, abs=WTOL)
