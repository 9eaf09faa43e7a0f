"""Failure risk, CVaR and hedges in the program: hand-computed optima, an independent CVaR, an
independent cvxpy model of random problems, and finite-difference duals."""

from __future__ import annotations

import itertools
from typing import Any

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import linprog

import bondfolio
from bondfolio.inputs import Universe, load_snapshot
from bondfolio.inputs.scenarios import build_scenarios, load_scenarios
from bondfolio.solver.record import load_decision
from tests.factories import opportunity, policy, snapshot

PT = opportunity("pt", 0.08, protocol="pendle", kind="fixed", duration=2.0, maturity="2028-11-20T00:00:00Z")
FLOAT = opportunity("float", 0.04, protocol="aave")
SWAP = opportunity("swap", 0.0, protocol="swaps", kind="hedge", tier="hedge", duration=-4.0, carry=0.002, margin=0.1,
                   side="long")
SWAP_BOUNDS = ({"kind": "max_weight", "max": 2.0, "select": {"ids": ["swap"]}},)


def weights(d: bondfolio.Decision) -> dict[str, float]:
    return {k: float(v) for k, v in d.weights.items()}


def row(d: bondfolio.Decision, kind: str, name: str | None = None) -> dict[str, Any]:
    return next(r for r in d.constraint_rows if r["kind"] == kind and (name is None or r["row"] == name))


# ---------------------------------------------------------------------------------------------- hedges
def test_swap_brings_duration_into_band() -> None:
    snap = snapshot([PT, SWAP])
    with pytest.raises(bondfolio.InfeasibleError):  # all in the 2-year PT: duration 2 > 0.5
        bondfolio.allocate(snapshot([PT]), policy({"kind": "duration", "max": 0.5}))
    d = bondfolio.allocate(snap, policy({"kind": "duration", "min": 0.0, "max": 0.5}, *SWAP_BOUNDS))
    # pt + 0.1 s = 1 (margin from NAV) and 2 pt - 4 s = 0.5  =>  s = 1.5 / 4.2, pt = 1 - 0.1 s
    s = 1.5 / 4.2
    assert weights(d) == pytest.approx({"pt": 1 - 0.1 * s, "swap": s}, abs=1e-7)
    assert d.metrics["duration"] == pytest.approx(0.5, abs=1e-7)
    assert d.metrics["margin_posted"] == pytest.approx(0.1 * s, abs=1e-7)
    assert d.metrics["margin_required"] == pytest.approx(0.1 * s, abs=1e-7)
    assert d.metrics["hedge_carry"] == pytest.approx(0.002 * s, abs=1e-9)
    assert d.metrics["objective"] == pytest.approx(0.08 * (1 - 0.1 * s) - 0.002 * s, abs=1e-9)
    assert row(d, "budget", "margin")["value"] == pytest.approx(0.0, abs=1e-7)
    # raising the band's max by e moves s by -e / 4.2 and pt by +0.1 e / 4.2: objective + (0.008 + 0.002) / 4.2
    assert row(d, "duration")["dual"] == pytest.approx((0.08 * 0.1 + 0.002) / 4.2, rel=1e-5)


def test_hedge_ratio_floor_binds() -> None:
    d = bondfolio.allocate(snapshot([PT, FLOAT, SWAP]), policy({"kind": "hedge_ratio", "min": 0.5}, *SWAP_BOUNDS))
    # offset 4 s >= 0.5 * 2 pt  =>  s = pt / 4; pt + 0.1 s = 1  =>  pt = 1 / 1.025 (the PT nets more than 4 %)
    pt = 1 / 1.025
    assert weights(d) == pytest.approx({"pt": pt, "float": 0.0, "swap": pt / 4}, abs=1e-7)
    assert row(d, "hedge_ratio")["value"] == pytest.approx(0.0, abs=1e-7)


def test_net_delta_with_a_short_perp_and_margin() -> None:
    weth = opportunity("weth", 0.02, protocol="aave", asset="ETH")
    perp = opportunity("perp", 0.0, protocol="perps", kind="hedge", tier="hedge", exposures={"delta:ETH": 1.0},
                       carry=0.01, margin=0.2, side="short")
    bounds = ({"kind": "min_weight", "min": -1.0, "select": {"ids": ["perp"]}},)
    d = bondfolio.allocate(snapshot([weth, perp]), policy({"kind": "net_delta", "asset": "ETH", "min": -0.01,
                                                           "max": 0.01}, *bounds))
    # short notional p: delta w - p = 0.01 (more ETH earns more), w + 0.2 p = 1  =>  p = 0.99 / 1.2
    p = 0.99 / 1.2
    assert weights(d) == pytest.approx({"weth": p + 0.01, "perp": -p}, abs=1e-7)
    assert row(d, "net_delta")["value"] == pytest.approx(0.01, abs=1e-7)
    assert d.metrics["objective"] == pytest.approx(0.02 * (p + 0.01) - 0.01 * p, abs=1e-9)


def test_hedge_budget_and_tier_share_cap_the_hedge() -> None:
    base = ({"kind": "duration", "max": 0.5}, *SWAP_BOUNDS)
    with pytest.raises(bondfolio.InfeasibleError):  # s >= 1.5 / 4.2 costs 0.000714 a year > 0.0005
        bondfolio.allocate(snapshot([PT, SWAP]), policy(*base, {"kind": "hedge_budget", "max": 0.0005}))
    d = bondfolio.allocate(snapshot([PT, FLOAT, SWAP]),
                           policy(*base, {"kind": "tier_share", "tier": "hedge", "max": 0.2}))
    # s = 0.2; duration 2 pt - 0.8 = 0.5  =>  pt = 0.65; float takes the rest after margin 0.02
    assert weights(d) == pytest.approx({"pt": 0.65, "float": 1 - 0.65 - 0.02, "swap": 0.2}, abs=1e-7)
    assert row(d, "tier_share")["binding"]


def test_tier_share_floor_on_core() -> None:
    core = opportunity("core", 0.03, tier="core")
    extra = opportunity("extra", 0.07, tier="yield", protocol="other")
    d = bondfolio.allocate(snapshot([core, extra]), policy({"kind": "tier_share", "tier": "core", "min": 0.6}))
    assert weights(d) == pytest.approx({"core": 0.6, "extra": 0.4}, abs=1e-7)
    assert row(d, "tier_share")["dual"] == pytest.approx(-0.04, rel=1e-6)  # one more unit of core costs 4 %


def test_margin_of_a_two_sided_hedge_is_exact_or_rejected() -> None:
    either = {**SWAP, "side": "either"}
    bounds = ({"kind": "max_weight", "max": 2.0, "select": {"ids": ["swap"]}},
              {"kind": "min_weight", "min": -2.0, "select": {"ids": ["swap"]}})
    d = bondfolio.allocate(snapshot([PT, FLOAT, either]), policy({"kind": "duration", "max": 0.5}, *bounds))
    assert d.metrics["margin_posted"] == pytest.approx(d.metrics["margin_required"], abs=1e-7)
    # duration <= 0.5 with a hedge budget too small for the swap: only by posting idle margin (cash in
    # disguise) could the program meet it, and the check rejects that answer
    with pytest.raises((bondfolio.CheckFailedError, bondfolio.InfeasibleError)):
        bondfolio.allocate(snapshot([PT, either]), policy({"kind": "duration", "max": 0.5},
                                                          {"kind": "hedge_budget", "max": 0.0005}, *bounds))


def test_side_is_for_hedges_only() -> None:
    with pytest.raises(bondfolio.InputError, match="carry, margin and side are for hedges"):
        bondfolio.allocate(snapshot([{**FLOAT, "side": "short"}]), policy())


def test_tier_share_rejects_a_hedge_minimum() -> None:
    with pytest.raises(bondfolio.InputError, match="a minimum gross hedge notional is not convex"):
        bondfolio.allocate(snapshot([PT, SWAP]), policy({"kind": "tier_share", "tier": "hedge", "min": 0.1}))


# ---------------------------------------------------------------------------------------------- failures
FAILURE = {"sources": [{"group": "oracle:x", "probability": 0.02, "loss_given_failure": 0.5}], "rule": None}


def test_expected_failure_loss_enters_the_objective() -> None:
    a = opportunity("a", 0.05, protocol="pa", tags=["oracle:x"])
    b = opportunity("b", 0.045, protocol="pb")
    snap = snapshot([a, b])
    snap["failure"] = FAILURE
    # a nets 5 % - 0.02 x 0.5 = 4 % < 4.5 %: all in b; ignoring failures, all in a
    assert weights(bondfolio.allocate(snap, policy())) == pytest.approx({"a": 0.0, "b": 1.0}, abs=1e-7)
    off = policy()
    off["objective"]["failure_aversion"] = 0.0
    assert weights(bondfolio.allocate(snap, off)) == pytest.approx({"a": 1.0, "b": 0.0}, abs=1e-7)
    capped = bondfolio.allocate(snap, policy({"kind": "max_weight", "max": 0.3, "select": {"ids": ["b"]}}))
    assert capped.metrics["expected_failure_loss"] == pytest.approx(0.7 * 0.01, abs=1e-9)
    assert capped.metrics["objective"] == pytest.approx(0.7 * 0.04 + 0.3 * 0.045, abs=1e-9)


# ---------------------------------------------------------------------------------------------- CVaR
def random_book(seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 8))
    opps = [opportunity(f"o{i}", float(rng.uniform(0.02, 0.12)), protocol=f"p{i % 3}",
                        risk_score=float(rng.uniform(0, 1)), asset=["USDC", "USDe"][i % 2],
                        tags=[f"oracle:{'ab'[i % 2]}"],
                        **({"kind": "fixed", "duration": float(rng.uniform(0.2, 2)),
                            "maturity": "2028-11-20T00:00:00Z"} if i % 3 == 2 else {}))
            for i in range(n)]
    k = 2
    snap = snapshot(opps, factors={"loadings": rng.normal(0, 0.05, (n, k)).tolist(),
                                   "factor_covariance": np.eye(k).tolist(),
                                   "specific_variance": rng.uniform(1e-5, 1e-3, n).tolist()})
    snap["failure"] = {"sources": [{"group": "oracle:a", "probability": 0.01, "loss_given_failure": 0.4}]}
    scen = {"samples": 300, "seed": seed, "depegs": [{"asset": "USDe", "drop": 0.1, "probability": 0.01}]}
    return snap, {"alpha": 0.9, "scenarios": scen}


def independent_cvar(losses: np.ndarray, prob: np.ndarray, alpha: float) -> float:
    """CVaR as the Rockafellar-Uryasev minimum over t, by scipy's LP solver (not by sorting)."""
    m = losses.size
    c = np.concatenate([[1.0], prob / (1 - alpha)])
    a_ub = np.hstack([-np.ones((m, 1)), -np.eye(m)])  # u_s >= L_s - t
    res = linprog(c, A_ub=a_ub, b_ub=-losses, bounds=[(None, None)] + [(0, None)] * m, method="highs")
    assert res.status == 0
    return float(res.fun)


def independent_optimum(snap: dict[str, Any], spec: dict[str, Any], limit: float, gamma: float) -> float:
    """The same problem written directly in cvxpy: RU variables, failure loss, risk; returns the optimum."""
    u = Universe.build(load_snapshot(snap), None, 1e6)
    s = build_scenarios(u, load_scenarios(spec["scenarios"]))
    w, t, e = cp.Variable(u.n), cp.Variable(), cp.Variable(len(s.names), nonneg=True)
    b = np.array(snap["risk"]["factors"]["loadings"])
    d = np.array(snap["risk"]["factors"]["specific_variance"])
    mu = u.apy - u.expected_loss_rate
    obj = mu @ w - gamma / 2 * (cp.sum_squares(b.T @ w) + d @ cp.square(w))
    cons = [cp.sum(w) == 1, w >= 0, e >= s.losses @ w - t, t + s.probability @ e / (1 - spec["alpha"]) <= limit]
    prob = cp.Problem(cp.Maximize(obj), cons)
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal"
    return float(prob.value)


@pytest.mark.parametrize("seed", range(6))
def test_cvar_random_books_match_an_independent_model(seed: int) -> None:
    snap, spec = random_book(seed)
    u = Universe.build(load_snapshot(snap), None, 1e6)
    s = build_scenarios(u, load_scenarios(spec["scenarios"]))
    # a limit halfway between the least and the most CVaR any single position has, so it binds
    single = [independent_cvar(s.losses[:, i], s.probability, spec["alpha"]) for i in range(u.n)]
    limit = float(np.mean(single))
    d = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, **spec}, gamma=2.0))
    assert d.check["passed"]
    w = d.weights.to_numpy()
    reported = row(d, "cvar")["value"]
    assert reported == pytest.approx(independent_cvar(s.losses @ w, s.probability, spec["alpha"]), abs=1e-9)
    assert reported <= limit + 1e-7
    assert d.metrics["objective"] == pytest.approx(independent_optimum(snap, spec, limit, 2.0), abs=1e-7)


def test_cvar_dual_matches_finite_difference() -> None:
    snap, spec = random_book(3)
    u = Universe.build(load_snapshot(snap), None, 1e6)
    s = build_scenarios(u, load_scenarios(spec["scenarios"]))
    limit = float(np.mean([independent_cvar(s.losses[:, i], s.probability, 0.9) for i in range(u.n)]))
    d = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, **spec}, gamma=2.0))
    h = 1e-5
    up = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit + h, **spec}, gamma=2.0))
    down = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit - h, **spec}, gamma=2.0))
    slope = (up.metrics["objective"] - down.metrics["objective"]) / (2 * h)
    # piecewise-smooth value function: the dual is a (one-sided) slope there; 1 % covers the kinks' curvature
    assert row(d, "cvar")["dual"] == pytest.approx(slope, rel=1e-2)


def test_cvar_penalty_trades_yield_for_tail() -> None:
    snap, spec = random_book(1)
    values, tails = [], []
    for rho in (0.0001, 0.1, 1.0, 10.0):
        d = bondfolio.allocate(snap, policy({"kind": "cvar", "penalty": rho, **spec}, gamma=0.0))
        tail = row(d, "cvar")["value"]
        assert d.metrics["penalties"] == pytest.approx(rho * tail, rel=1e-12)
        assert d.metrics["objective"] == pytest.approx(d.solution.objective, abs=1e-8)
        values.append(d.metrics["expected_apy"])
        tails.append(tail)
        # a row held by a penalty alone has no bound: no slack, never binding, and the record still seals
        record = load_decision(d.to_json())
        held = next(r for r in record.constraints if r.kind == "cvar")
        assert (held.lower, held.upper, held.slack, held.binding) == (None, None, None, False)
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(values))
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(tails))
    assert tails[0] > tails[-1]


def test_cvar_needs_a_limit_or_a_penalty() -> None:
    with pytest.raises(bondfolio.InputError, match="give 'max' \\(a limit\\), 'penalty'"):
        bondfolio.allocate(snapshot([FLOAT]), policy({"kind": "cvar"}))


@pytest.mark.parametrize("seed", range(4))
def test_a_scenario_lp_goes_to_highs_first_with_the_same_optimum(seed: int) -> None:
    # gamma = 0 and a cvar limit: a linear program with a scenario block, which the shape sends to HiGHS;
    # the optimum equals the independent cvxpy + Clarabel model's and a Clarabel-forced solve's (1e-7: both
    # solvers stop at 1e-9 feasibility; the objective is in APY units ~0.05)
    snap, spec = random_book(seed)
    u = Universe.build(load_snapshot(snap), None, 1e6)
    s = build_scenarios(u, load_scenarios(spec["scenarios"]))
    limit = float(np.mean([independent_cvar(s.losses[:, i], s.probability, spec["alpha"]) for i in range(u.n)]))
    d = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, **spec}, gamma=0.0))
    solver = d.to_dict()["solver"]
    assert (solver["name"], solver["order"], solver["order_from"]) == ("HIGHS", ["HIGHS", "CLARABEL", "SCS"],
                                                                      "shape: scenario LP")
    assert d.check["passed"]
    forced = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, **spec}, gamma=0.0,
                                             solver={"order": ["CLARABEL"]}))
    assert forced.to_dict()["solver"]["order_from"] == "policy"
    assert d.metrics["objective"] == pytest.approx(independent_optimum(snap, spec, limit, 0.0), abs=1e-7)
    assert d.metrics["objective"] == pytest.approx(forced.metrics["objective"], abs=1e-7)
    # with quadratic risk the same book is a QP: Clarabel first
    qp = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, **spec}, gamma=2.0)).to_dict()["solver"]
    assert (qp["name"], qp["order_from"]) == ("CLARABEL", "shape: QP or conic")


def test_a_plain_lp_keeps_clarabel_first() -> None:
    d = bondfolio.allocate(snapshot([opportunity("a", 0.05), opportunity("b", 0.04)]),
                           policy({"kind": "max_weight", "max": 0.6}, gamma=0.0)).to_dict()["solver"]
    assert (d["name"], d["order"], d["order_from"]) == ("CLARABEL", ["CLARABEL", "SCS"], "shape: LP")
