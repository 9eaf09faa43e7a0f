"""The frontier on the solution path against cold Clarabel solves of every point.

The path (bondfolio/solver/path.py) is exact: each of its points must equal an independent cold
interior-point solve of the same program, objective within 1e-7 relative and weights within 1e-6,
on a book whose active set changes many times along the sweep, with and without a binding
volatility cap, and on the bundled example (CVaR rows, a volatility cap).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from bondfolio.audit.frontier import Frontier, frontier
from bondfolio.constraints.variables import Point
from bondfolio.solver.api import load_inputs
from bondfolio.solver.decision import Decision
from bondfolio.solver.path import METHOD
from bondfolio.solver.program import Program, Solution
from bondfolio.solver.solve import OBJECTIVE_SCALE
from tests.factories import EXAMPLE, opportunity, policy, snapshot

#: The reference: Clarabel, cold, tighter than the engine's own settings (the path is exact; the
#: reference's own error is what the tolerances below have to cover).
REFERENCE = {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "max_iter": 400}
OBJ_RTOL = 1e-7
W_TOL = 1e-6

NAV = 10_000_000.0
PROTOCOLS = ["aave-v3", "compound-v3", "morpho-blue", "sky", "pendle", "spark"]


def book(n: int, seed: int, vol_cap: float | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A factor-risk book with every linear constraint family, trading costs, some positions not
    held (so the trade-size kinks meet the zero bound), and optionally a volatility cap at
    ``vol_cap`` times the volatility of a feasible reference allocation."""
    rng = np.random.default_rng(seed)
    w_star = rng.dirichlet(np.ones(n)) * 0.97
    apy = rng.uniform(0.02, 0.12, n)
    dur = np.where(rng.random(n) < 0.3, rng.uniform(0.05, 2.0, n), 0.0)
    risk = rng.uniform(0.02, 0.5, n)
    delay = np.where(rng.random(n) < 0.2, 7.0, 0.0)
    protocol = [PROTOCOLS[i] for i in rng.integers(0, len(PROTOCOLS), n)]
    liquidity = NAV * w_star / rng.uniform(0.02, 0.2, n) + 1e5
    k = 4
    loadings = rng.normal(0.0, 1.0, (n, k))
    a = rng.normal(0.0, 0.004, (k, k))
    fcov = a @ a.T + np.diag(rng.uniform(1e-6, 1e-5, k))
    spec = rng.uniform(1e-6, 1e-4, n)
    opps = [opportunity(f"o{i:03d}", float(apy[i]), protocol=protocol[i], duration=float(dur[i]),
                        kind="fixed" if dur[i] > 0 else "floating", risk_score=float(risk[i]),
                        tier="core" if risk[i] < 0.2 else "yield", withdrawal_delay_days=float(delay[i]),
                        available_liquidity=float(liquidity[i]), tvl=float(liquidity[i] * 4)) for i in range(n)]
    snap = snapshot(opps, factors={"loadings": loadings.tolist(), "factor_covariance": fcov.tolist(),
                                   "specific_variance": spec.tolist()})
    w0 = rng.dirichlet(np.ones(n)) * 0.95
    w0[rng.random(n) < 0.3] = 0.0  # not held: w0 = 0, where both trade-size rows meet the bound w >= 0
    holdings = {"positions": {o["id"]: float(w0[i] * NAV) for i, o in enumerate(opps)},
                "cash": float(NAV - w0.sum() * NAV)}
    groups = {p: float(sum(w_star[i] for i in range(n) if protocol[i] == p)) for p in set(protocol)}
    cov_w = loadings @ (fcov @ (loadings.T @ w_star)) + spec * w_star
    constraints: list[dict[str, Any]] = [
        {"kind": "budget", "allow_cash": True, "max_cash": 0.05},
        {"kind": "max_weight", "max": float(w_star.max()) * 1.5},
        {"kind": "min_weight", "limits": {opps[0]["id"]: float(w_star[0]) * 0.5}},
        {"kind": "group_cap", "by": "protocol", "limits": {p: min(1.0, v + 0.03) for p, v in groups.items()}},
        {"kind": "group_floor", "by": "tier", "limits": {"core": 0.1}},
        {"kind": "duration", "target": float(dur @ w_star), "tolerance": 0.05},
        {"kind": "liquidity_share", "max_share": 0.25},
        {"kind": "liquidity_buffer", "horizon_days": 1, "min": 0.3},
        {"kind": "risk_budget", "max": float(risk @ w_star) + 0.02},
        {"kind": "turnover", "max": float(np.abs(w_star - w0).sum()) + 0.1},
    ]
    if vol_cap is not None:
        constraints.append({"kind": "max_volatility", "max": float(np.sqrt(w_star @ cov_w)) * vol_cap})
    pol = policy(*constraints, nav=NAV, objective={"risk_aversion": 20.0, "trading_cost_bp": 3.0})
    return snap, pol, holdings


def assert_matches_cold_solves(f: Frontier, snap: Any, pol: Any, holdings: Any, every: int = 1) -> None:
    """Each point of ``f`` against Clarabel, cold, at the point's risk aversion."""
    inputs = load_inputs(snap, pol, holdings)
    program = Program(inputs.universe, inputs.policy, with_risk=True)
    for i, row in f.frame.iloc[::every].iterrows():
        gamma = float(row["risk_aversion"])
        program.update(risk_aversion=gamma)
        for tol in (1e-11, 1e-10, 1e-9):  # as tight as Clarabel reaches ("optimal", never "inaccurate")
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                program.problem.solve(solver="CLARABEL", ignore_dpp=True,
                                      **{**REFERENCE, "tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol})
            if program.problem.status == "optimal":
                break
        assert program.problem.status == "optimal", (gamma, program.problem.status)
        point = Point(np.asarray(program.vars.w.value, dtype=float), float(program.vars.cash.value))
        assert program.max_violation(point) <= 1e-7
        sol = Solution(point=point, solver="CLARABEL", status="optimal", inaccurate=False,
                       objective=float(program.problem.value) / OBJECTIVE_SCALE, attempts=[], checks=[], duals=[],
                       compile_seconds=0.0, solve_seconds=0.0, solver_seconds=None)
        cold = Decision(inputs.snapshot, inputs.policy, inputs.holdings, program, sol).metrics
        ref = cold["objective"]
        assert abs(row["objective"] - ref) <= OBJ_RTOL * max(abs(ref), 1e-2), (gamma, row["objective"], ref)
        if gamma > 0:  # the linear program at 0 may have many optima: its objective is what is unique
            assert abs(row["volatility"] - cold["volatility"]) <= W_TOL, gamma
            gap = float(np.abs(f.weights.loc[i].to_numpy() - point.w).max())
            assert gap <= W_TOL, (gamma, gap)


@pytest.mark.parametrize("vol_cap", [None, 1.0])
def test_path_points_equal_cold_clarabel_solves_on_a_book_whose_active_set_changes(vol_cap: float | None) -> None:
    snap, pol, holdings = book(40, seed=3, vol_cap=vol_cap)
    f = frontier(snap, pol, holdings, points=20)
    frame = f.frame
    assert f.method == "path" and f.path_unavailable is None
    assert (frame["solver"] == METHOD).all() and (frame["status"] == "optimal").all()
    assert f.breakpoints >= 40  # the active set changes many times along the sweep
    assert (frame["breakpoints"] > 0).sum() >= 10
    assert (frame["check_max_violation"] <= 1e-9).all() and (frame["kkt_residual"] <= 1e-8).all()
    assert_matches_cold_solves(f, snap, pol, holdings)


def test_a_binding_volatility_cap_holds_exactly_and_every_lower_risk_aversion_shares_its_point() -> None:
    snap, pol, holdings = book(40, seed=5, vol_cap=0.8)
    f = frontier(snap, pol, holdings, points=20)
    frame = f.frame
    cap = next(c["max"] for c in pol["constraints"] if c["kind"] == "max_volatility")
    capped = frame[frame["volatility"] >= cap - 1e-12]
    assert len(capped) >= 2 and capped["risk_aversion"].iloc[0] == 0.0
    assert (frame["volatility"] <= cap + 1e-12).all()
    assert np.ptp(capped["expected_apy"]) <= 1e-12  # the same allocation below the cap's risk aversion
    assert (frame["method"] == "path").all()
    assert_matches_cold_solves(f, snap, pol, holdings)


def test_example_frontier_is_on_the_path_and_equals_cold_solves() -> None:
    snap, pol, holdings = EXAMPLE / "snapshot.json", EXAMPLE / "policy.toml", EXAMPLE / "holdings.json"
    f = frontier(snap, pol, holdings, points=16)
    assert (f.frame["method"] == "path").all() and f.breakpoints > 0
    own = f.frame[f.frame["is_policy"]]
    assert len(own) == 1
    assert_matches_cold_solves(f, snap, pol, holdings, every=3)


def test_a_policy_off_the_path_is_solved_cold_point_by_point_and_says_why() -> None:
    snap = snapshot([opportunity("a", 0.03), opportunity("b", 0.05), opportunity("c", 0.07)],
                    cov=np.diag([1e-5, 4e-4, 2.5e-3]))
    pol = policy({"kind": "max_weight", "max": 0.8}, nav=None, gamma=20.0, execution={"gas_per_leg": 50.0})
    holdings = {"positions": {"a": 400_000.0, "b": 300_000.0, "c": 300_000.0}, "cash": 0.0}
    f = frontier(snap, pol, holdings, points=5)
    assert f.method == "cold solves"
    assert f.path_unavailable is not None and "fixed costs" in f.path_unavailable
    assert (f.frame["method"] == "cold solve").all() and (f.frame["solver"] != METHOD).all()
    assert (f.frame["status"] == "optimal").all()


def test_a_policy_without_risk_aversion_starts_the_path_inside_the_grid() -> None:
    snap, pol, holdings = book(30, seed=7, vol_cap=None)
    pol["objective"]["risk_aversion"] = 0.0
    f = frontier(snap, pol, holdings, points=12)
    frame = f.frame
    assert frame["method"].iloc[0].startswith("cold solve") and frame["risk_aversion"].iloc[0] == 0.0
    assert (frame["method"].iloc[1:] == "path").all()
    assert_matches_cold_solves(f, snap, pol, holdings, every=2)
