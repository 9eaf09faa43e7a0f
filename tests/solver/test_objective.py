"""Objective terms: each term's numpy value by hand, its cvxpy expression against its numpy value, its
marginal against a finite difference, and the terms adding up to the objective the record reports."""

from __future__ import annotations

import numpy as np
import pytest

import bondfolio
from bondfolio.constraints import Point
from bondfolio.inputs import Universe, load_policy, load_snapshot
from bondfolio.solver.program import Program
from tests.factories import opportunity, policy, snapshot

NAV = 1_000_000.0


def _book() -> tuple[dict, dict, dict]:
    opps = [opportunity("a", 0.06, protocol="pa", risk_score=0.4),
            opportunity("b", 0.04, protocol="pb", risk_score=0.1),
            opportunity("h", 0.0, protocol="perps", kind="hedge", tier="hedge", duration=-1.0, carry=0.02,
                        margin=0.1)]
    cov = np.array([[4e-4, 1e-4, 0.0], [1e-4, 1e-4, 0.0], [0.0, 0.0, 9e-4]])
    snap = snapshot(opps, cov=cov)
    snap["failure"] = {"sources": [], "rule": {"probability_at_score_1": 0.05, "loss_given_failure": 0.5}}
    pol = policy({"kind": "max_weight", "max": 0.7}, {"kind": "min_weight", "limits": {"h": -0.2}},
                 {"kind": "duration", "min": -0.1}, gamma=4.0)
    pol["objective"].update({"trading_cost_bp": 10.0, "cash_apy": 0.01})
    pol["constraints"].insert(0, {"kind": "budget", "allow_cash": True})
    hold = {"positions": {"a": 300_000.0, "b": 700_000.0}, "cash": 0.0}
    return snap, pol, hold


def _program() -> Program:
    snap, pol, hold = _book()
    u = Universe.build(load_snapshot(snap), bondfolio.load_holdings(hold), NAV)
    return Program(u, load_policy(pol))


def test_term_values_by_hand() -> None:
    p = _program()
    x = Point(np.array([0.5, 0.4, -0.1]), 0.1, 0.01)
    values = {t.name: t.value(x) for t in p.terms}
    assert values["yield"] == pytest.approx(0.06 * 0.5 + 0.04 * 0.4, abs=1e-15)
    assert values["cash"] == pytest.approx(0.01 * 0.1, abs=1e-15)
    w = x.w
    cov = np.array([[4e-4, 1e-4, 0.0], [1e-4, 1e-4, 0.0], [0.0, 0.0, 9e-4]])
    assert values["risk"] == pytest.approx(4.0 / 2 * w @ cov @ w, rel=1e-12)
    # trading cost: |0.5 - 0.3| + |0.4 - 0.7| + |-0.1 - 0| at 10 bp
    assert values["trading_cost"] == pytest.approx(1e-3 * (0.2 + 0.3 + 0.1), abs=1e-15)
    assert values["carry"] == pytest.approx(0.02 * 0.1, abs=1e-15)
    # score rule: protocol pa fails with 5 % x 0.4 = 2 % and loses half: el_a = 1 %; pb 0.25 %
    assert values["failure_loss"] == pytest.approx(0.01 * 0.5 + 0.0025 * 0.4, abs=1e-15)
    total = sum(t.sign * t.value(x) for t in p.terms)
    assert p.exact_objective(x) == pytest.approx(total, abs=1e-15)


def test_marginals_match_finite_differences() -> None:
    p = _program()
    x = Point(np.array([0.45, 0.35, -0.1]), 0.2, 0.01)  # away from every kink (|w - w0|, |w_h|)
    h = 1e-6
    for term in p.terms:
        numeric = np.zeros(3)
        for i in range(3):
            up, down = x.w.copy(), x.w.copy()
            up[i] += h
            down[i] -= h
            numeric[i] = (term.value(Point(up, x.cash, x.margin)) - term.value(Point(down, x.cash, x.margin))) / (2 * h)
        assert term.marginal(x) == pytest.approx(numeric, abs=1e-8), term.name


def test_cvxpy_expressions_equal_numpy_values_at_the_optimum() -> None:
    p = _program()
    sol = p.solve()
    x = sol.point
    for term in p.terms:
        if term.linear or not term.active:
            continue
        expr = term.expression(p.vars)  # evaluated on the solved variables
        assert float(expr.value) == pytest.approx(term.value(x), abs=1e-8), term.name
    # the solver's own objective and the terms' sum in numpy agree to its tolerance
    assert sol.objective == pytest.approx(p.exact_objective(x), abs=1e-8)


def test_reported_objective_is_the_sum_of_the_terms() -> None:
    snap, pol, hold = _book()
    d = bondfolio.allocate(snap, pol, hold)
    assert d.metrics["objective"] == pytest.approx(d.program.exact_objective(d.solution.point), abs=1e-12)
    assert [t.name for t in d.program.terms] == ["yield", "cash", "risk", "trading_cost", "carry", "failure_loss"]
