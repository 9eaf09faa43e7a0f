"""explain: constraint values by hand, optimality conditions, risk contributions."""


from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import bondfolio
from bondfolio.audit.explain import explain
from bondfolio.inputs.scenarios import cvar
from bondfolio.solver.record import load_decision
from tests.factories import (
    BPTOL,
    two_assets,
)


# ---------------------------------------------------------------------------------------------- explain
def test_explain_prices_a_cap_by_hand() -> None:
    snap, pol = two_assets()
    e = explain(bondfolio.allocate(snap, pol))
    (cap,) = [b for b in e.binding if b["kind"] == "max_weight"]
    assert cap["row"] == "a" and cap["bound"] == pytest.approx(0.3) and cap["to"] == pytest.approx(0.31)
    # one more point of A instead of B: 0.01 x (6 % - 4 %) = 2 bp, by the dual and by the re-solve
    assert cap["estimate_bp"] == pytest.approx(2.0, abs=BPTOL)
    assert cap["exact_bp"] == pytest.approx(2.0, abs=BPTOL)
    assert cap["expected_apy_change_bp"] == pytest.approx(2.0, abs=BPTOL)
    assert "from 30% to 31% adds 2.00 bp" in cap["sentence"]
    pos = {p["id"]: p for p in e.positions}
    # B is the marginal asset: it prices the budget (4 %), so its edge is 0; A's cap is worth 2 %
    assert pos["b"]["shared"] == pytest.approx(0.04, abs=1e-7) and pos["b"]["edge"] == pytest.approx(0.0, abs=1e-7)
    assert pos["a"]["edge"] == pytest.approx(0.02, abs=1e-7) and pos["a"]["status"].startswith("at max_weight")


def test_explain_example_satisfies_optimality_and_contributions_add_up(example_record: dict[str, Any]) -> None:
    e = explain(example_record, max_exact=2)
    costs = e.to_dict()
    pol = load_decision(example_record).inputs_for()[1]
    by_id = pol.objective.trading_cost_bp_by_id
    for p in costs["positions"]:
        cost = by_id.get(p["id"], pol.objective.trading_cost_bp) / 1e4
        if p["status"] == "between its bounds":  # KKT: net = shared + a trading-cost subgradient
            assert abs(p["edge"]) <= cost + 5e-5, p
        elif p["status"] == "not held":  # not worth entering: it lacks yield (up to its trading cost)
            assert p["edge"] <= cost + 5e-5, p
    risk = e.risk
    assert sum(r["volatility"] for r in risk["by_protocol"].values()) == pytest.approx(
        example_record["metrics"]["volatility"], rel=1e-9)
    (c,) = risk["cvar"]
    assert c["value"] == pytest.approx(0.06, abs=1e-7)  # the binding limit
    assert sum(r["cvar_0.95"] for r in risk["by_protocol"].values()) == pytest.approx(c["value"], rel=1e-9)
    assert sum(r["failure"] for r in risk["by_protocol"].values()) == pytest.approx(
        example_record["metrics"]["expected_failure_loss"], rel=1e-9)
    exact = [b for b in e.binding if b["exact_bp"] is not None]
    assert len(exact) == 2 and all(b["exact_bp"] > 0 for b in exact)


def test_cvar_contributions_by_hand() -> None:
    from bondfolio.audit.explain import _cvar_contributions

    losses = np.array([[0.1, 0.0], [0.0, 0.2], [0.05, 0.05], [0.0, 0.0]])
    prob = np.array([0.1, 0.1, 0.3, 0.5])
    w = np.array([0.5, 0.5])
    contrib, value = _cvar_contributions(losses, prob, 0.8, w)
    # portfolio losses 0.05, 0.10, 0.05, 0: the tail (20 %) is scenario 2 (10 %) and half of the 0.05 mass
    assert value == pytest.approx(cvar(losses @ w, prob, 0.8)[0]) == pytest.approx((0.1 * 0.1 + 0.1 * 0.05) / 0.2)
    assert contrib.sum() == pytest.approx(value)
