"""Random feasible books: every constraint holds, and the objective equals an independent formulation.

Books are built around a known feasible point ``w*`` so every drawn policy is feasible. The
independent model is written directly in cvxpy from the raw inputs (dense covariance formed from the
factors, ``quad_form`` risk, hand-written constraints), sharing no code with bondfolio's program.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bondfolio
from tests.factories import opportunity, policy, snapshot

PROTOCOLS = ["aave-v3", "compound-v3", "morpho-blue", "pendle"]
NAV = 10_000_000.0
# Both models are solved to 1e-9 gap; the objectives (APY units, ~0.05) must agree to 1e-7.
OBJ_TOL = 1e-7


@st.composite
def books(draw: st.DrawFn) -> tuple[dict, dict, dict, dict]:
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(3, 9))
    rng = np.random.default_rng(seed)
    w_star = rng.dirichlet(np.ones(n)) * 0.97
    cash_star = 0.03
    apy = rng.uniform(0.02, 0.12, n)
    dur = np.where(rng.random(n) < 0.4, rng.uniform(0.1, 2.0, n), 0.0)
    risk = rng.uniform(0.0, 0.6, n)
    delay = np.where(rng.random(n) < 0.3, 7.0, 0.0)
    protocol = [PROTOCOLS[i] for i in rng.integers(0, len(PROTOCOLS), n)]
    liquidity = NAV * w_star / rng.uniform(0.05, 0.5, n)  # makes w* satisfy liquidity_share at 0.5
    tvl = liquidity * rng.uniform(2.0, 10.0, n)
    k = int(rng.integers(1, 4))
    loadings = rng.normal(0, 1, (n, k))
    a = rng.normal(0, 0.01, (k, k))
    fcov = a @ a.T
    spec = rng.uniform(1e-6, 1e-4, n)
    opps = [opportunity(f"o{i}", float(apy[i]), protocol=protocol[i], duration=float(dur[i]),
                        kind="fixed" if dur[i] > 0 else "floating", risk_score=float(risk[i]),
                        withdrawal_delay_days=float(delay[i]), available_liquidity=float(liquidity[i]),
                        tvl=float(tvl[i])) for i in range(n)]
    snap = snapshot(opps, factors={"loadings": loadings.tolist(), "factor_covariance": fcov.tolist(),
                                   "specific_variance": spec.tolist()})
    cov = loadings @ fcov @ loadings.T + np.diag(spec)
    w0 = rng.dirichlet(np.ones(n)) * 0.9
    holdings = {"positions": {f"o{i}": float(w0[i] * NAV) for i in range(n)}, "cash": float(0.1 * NAV)}

    def slack() -> float:
        return float(draw(st.floats(0.0, 0.05)))

    groups = {p: float(sum(w_star[i] for i in range(n) if protocol[i] == p)) for p in set(protocol)}
    buffer = cash_star + float(sum(min(w_star[i], liquidity[i] / NAV) for i in range(n) if delay[i] <= 1))
    d_star = float(dur @ w_star)
    vol_star = float(np.sqrt(w_star @ cov @ w_star))
    constraints = [
        {"kind": "budget", "allow_cash": True, "max_cash": 0.05},
        {"kind": "max_weight", "max": float(w_star.max()) + slack()},
        {"kind": "min_weight", "limits": {"o0": max(0.0, float(w_star[0]) - 0.01)}},
        {"kind": "group_cap", "by": "protocol", "limits": {p: min(1.0, v + slack()) for p, v in groups.items()}},
        {"kind": "group_floor", "by": "protocol", "min": 0.0,
         "limits": {protocol[0]: max(0.0, groups[protocol[0]] - 0.05)}},
        {"kind": "duration", "min": max(0.0, d_star - 0.05), "max": d_star + slack()},
        {"kind": "liquidity_share", "max_share": 0.5},
        {"kind": "tvl_share", "max_share": 0.5},
        {"kind": "liquidity_buffer", "horizon_days": 1, "min": max(0.0, buffer - slack() - 1e-3)},
        {"kind": "risk_budget", "max": float(risk @ w_star) + slack()},
        {"kind": "max_volatility", "max": vol_star * 1.05 + 1e-4},
        {"kind": "turnover", "max": float(np.abs(w_star - w0).sum()) + slack()},
        {"kind": "exposure", "attribute": "apy", "min": float(apy @ w_star) - 0.01},
    ]
    gamma = float(draw(st.sampled_from([0.0, 5.0, 50.0])))
    cost_bp = float(draw(st.sampled_from([0.0, 3.0])))
    pol = policy(*constraints, nav=NAV, gamma=gamma, objective={"risk_aversion": gamma, "trading_cost_bp": cost_bp})
    raw = {"apy": apy, "dur": dur, "risk": risk, "delay": delay, "protocol": protocol, "liq": liquidity / NAV,
           "tvl": tvl / NAV, "cov": cov, "w0": w0, "cash0": 0.1, "gamma": gamma, "cost": cost_bp / 1e4,
           "constraints": constraints}
    return snap, pol, holdings, raw


def independent_optimum(raw: dict) -> float:
    """The same model written from scratch: dense covariance, hand-written constraints."""
    n = raw["apy"].size
    w, c = cp.Variable(n), cp.Variable()
    cons = [w >= 0]
    for spec in raw["constraints"]:
        kind = spec["kind"]
        if kind == "budget":
            cons += [cp.sum(w) + c == 1, c >= 0, c <= spec["max_cash"]]
        elif kind == "max_weight":
            cons += [w <= spec["max"]]
        elif kind == "min_weight":
            cons += [w[0] >= spec["limits"]["o0"]]
        elif kind in ("group_cap", "group_floor"):
            for p, bound in spec["limits"].items():
                members = [i for i in range(n) if raw["protocol"][i] == p]
                total = cp.sum(w[members])
                cons += [total <= bound] if kind == "group_cap" else [total >= bound]
        elif kind == "duration":
            cons += [raw["dur"] @ w >= spec["min"], raw["dur"] @ w <= spec["max"]]
        elif kind == "liquidity_share":
            cons += [w <= spec["max_share"] * raw["liq"]]
        elif kind == "tvl_share":
            cons += [w <= spec["max_share"] * raw["tvl"]]
        elif kind == "liquidity_buffer":
            liquid = [i for i in range(n) if raw["delay"][i] <= spec["horizon_days"]]
            cons += [c + cp.sum(cp.minimum(w[liquid], raw["liq"][liquid])) >= spec["min"]]
        elif kind == "risk_budget":
            cons += [raw["risk"] @ w <= spec["max"]]
        elif kind == "max_volatility":
            cons += [cp.quad_form(w, cp.psd_wrap(raw["cov"])) <= spec["max"] ** 2]
        elif kind == "turnover":
            cons += [cp.norm1(w - raw["w0"]) <= spec["max"]]
        elif kind == "exposure":
            cons += [raw["apy"] @ w >= spec["min"]]
        else:
            raise AssertionError(kind)
    objective = (raw["apy"] @ w - raw["gamma"] / 2 * cp.quad_form(w, cp.psd_wrap(raw["cov"]))
                 - raw["cost"] * cp.norm1(w - raw["w0"]))
    problem = cp.Problem(cp.Maximize(objective), cons)
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
    assert problem.status == cp.OPTIMAL, problem.status
    return float(problem.value)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_random_books_hold_every_constraint_and_match_independent_model(book: tuple[dict, dict, dict, dict]) -> None:
    snap, pol, holdings, raw = book
    d = bondfolio.allocate(snap, pol, holdings)
    assert d.check["passed"]
    assert d.check["max_violation"] <= 1e-7
    assert len(d.constraint_rows) == d.check["rows_checked"]
    assert {r["kind"] for r in d.constraint_rows} >= {c["kind"] for c in raw["constraints"]}
    assert abs(d.metrics["objective"] - independent_optimum(raw)) <= OBJ_TOL
    # the numpy objective and the solver's own agree too
    assert abs(d.metrics["objective"] - d.metrics["solver_objective"]) <= OBJ_TOL


@st.composite
def infeasible_books(draw: st.DrawFn) -> tuple[dict, dict]:
    """Books whose policy cannot hold: two families drawn to contradict each other (the conflict the
    diagnosis must name), plus random slack families around them."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 8))
    protocol = [PROTOCOLS[i] for i in rng.integers(0, len(PROTOCOLS), n)]
    dur = np.where(rng.random(n) < 0.5, rng.uniform(0.1, 2.0, n), 0.0)
    opps = [opportunity(f"o{i}", float(rng.uniform(0.02, 0.1)), protocol=protocol[i], duration=float(dur[i]),
                        kind="fixed" if dur[i] > 0 else "floating", risk_score=float(rng.uniform(0, 0.5)),
                        available_liquidity=float(rng.uniform(1e5, 1e7)),
                        exposures={"delta:ETH": 0.0}) for i in range(n)]
    kind = draw(st.sampled_from(["caps", "duration", "exposure", "floor", "risk"]))
    if kind == "caps":  # every position capped below 1/n: cannot be fully invested
        conflict = [{"kind": "max_weight", "max": 0.9 / n}]
    elif kind == "duration":  # a band beyond every position's duration
        conflict = [{"kind": "duration", "min": float(dur.max()) + 0.5}]
    elif kind == "exposure":  # a floor on an attribute that is 0 everywhere
        conflict = [{"kind": "exposure", "attribute": "delta:ETH", "min": 2e-5}]
    elif kind == "floor":  # a protocol floor above its members' caps
        p0 = protocol[0]
        members = sum(1 for x in protocol if x == p0)
        conflict = [{"kind": "group_floor", "by": "protocol", "limits": {p0: 0.6}},
                    {"kind": "max_weight", "max": 0.5 / members}]
    else:  # a risk budget below every position's score
        conflict = [{"kind": "risk_budget", "max": 0.0}]
        for o in opps:
            o["risk_score"] = max(o["risk_score"], 0.05)
    extra = [{"kind": "group_cap", "by": "id", "max": 0.9}] if rng.random() < 0.5 else []
    return snapshot(opps), policy(*conflict, *extra)


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(infeasible_books())
def test_infeasible_books_raise_infeasible_with_a_verified_diagnosis(book: tuple[dict, dict]) -> None:
    from bondfolio.errors import InfeasibleError

    snap, pol = book
    try:
        bondfolio.allocate(snap, pol)
    except InfeasibleError as exc:  # never another exception from inside the diagnosis
        d = exc.diagnosis
        assert d is not None
        if d.conflict:
            assert all(label in str(exc) for label in d.conflict)
        return
    raise AssertionError("an infeasible book was allocated")


def edge_book(seed: int) -> tuple[dict, dict, np.ndarray, np.ndarray, np.ndarray, float]:
    """A feasible book at the edge of two families (the class that once raised CheckFailedError): a
    liquidity buffer of 0.99988 with total one-day liquidity within 0.3% of the NAV, and a volatility cap
    within 1% of the least volatility that buffer allows (found by an independent cvxpy model)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 8))
    share = rng.dirichlet(np.ones(n)) * float(rng.uniform(0.9999, 1.003))
    apy = rng.uniform(0.02, 0.1, n)
    loadings, a, spec = rng.normal(0, 1, (n, 2)), rng.normal(0, 0.01, (2, 2)), rng.uniform(1e-6, 1e-4, n)
    cov = loadings @ (a @ a.T) @ loadings.T + np.diag(spec)
    w, c = cp.Variable(n), cp.Variable()
    edge = [w >= 0, c >= 0, c <= 1e-4, cp.sum(w) + c == 1, c + cp.sum(cp.minimum(w, share)) >= 0.99988]
    least = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(cov))), edge)
    least.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert least.status == cp.OPTIMAL
    cap = float(np.sqrt(least.value)) * float(rng.uniform(1.0005, 1.01))
    best = cp.Problem(cp.Maximize(apy @ w), [*edge, cp.quad_form(w, cp.psd_wrap(cov)) <= cap**2])
    best.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert best.status == cp.OPTIMAL
    snap = snapshot([opportunity(f"o{i}", float(apy[i]), available_liquidity=float(share[i] * NAV)) for i in range(n)],
                    factors={"loadings": loadings.tolist(), "factor_covariance": (a @ a.T).tolist(),
                             "specific_variance": spec.tolist()})
    pol = policy({"kind": "budget", "allow_cash": True, "max_cash": 1e-4},
                 {"kind": "liquidity_buffer", "horizon_days": 1, "min": 0.99988},
                 {"kind": "max_volatility", "max": cap}, nav=NAV, gamma=0.0)
    return snap, pol, cov, apy, share, float(best.value)


@pytest.mark.parametrize("seed", range(40))
def test_books_at_the_edge_of_a_buffer_and_a_volatility_cap_allocate(seed: int) -> None:
    snap, pol, cov, apy, share, best = edge_book(seed)
    d = bondfolio.allocate(snap, pol)
    assert d.check["passed"] and d.check["max_violation"] <= 1e-7
    w = d.weights.to_numpy()
    cap = pol["constraints"][2]["max"]
    # the families' definitions, evaluated in numpy (1e-7: the check tolerance)
    assert np.sqrt(w @ cov @ w) <= cap + 1e-7
    assert d.weights.sum() + d.cash >= 1 - 1e-7 and d.cash + np.minimum(w, share).sum() >= 0.99988 - 1e-7
    # and the yield is the independent model's optimum (both solved to 1e-9 or better)
    assert apy @ w == pytest.approx(best, abs=1e-7)
