"""The Decision: structure, consistency of reported numbers, determinism and content hashes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bondfolio
from tests.factories import EXAMPLE, opportunity, policy, snapshot


@pytest.fixture(scope="module")
def example() -> bondfolio.Decision:
    return bondfolio.allocate(EXAMPLE / "snapshot.json", EXAMPLE / "policy.toml", EXAMPLE / "holdings.json")


def test_example_is_feasible_verified_and_uses_every_family(example: bondfolio.Decision) -> None:
    assert example.check["passed"] and example.check["max_violation"] <= 1e-7
    assert example.solution.status == "optimal"
    kinds = {r["kind"] for r in example.constraint_rows}
    assert kinds >= {"budget", "long_only", "max_weight", "group_cap", "group_floor", "duration",
                     "liquidity_buffer", "liquidity_share", "tvl_share", "risk_budget", "max_volatility"}


def test_weights_amounts_tokens_consistent(example: bondfolio.Decision) -> None:
    frame = example.to_frame()
    nav = example.universe.nav
    assert np.allclose(frame["amount"], frame["weight"] * nav)
    prices = {o.id: o.price for o in example.snapshot.opportunities}
    assert np.allclose(frame["tokens"], frame["amount"] / frame.index.map(prices))
    assert np.allclose(frame["trade_amount"], frame["amount"] - frame["current_amount"])
    assert example.weights.sum() + example.cash == pytest.approx(1.0, abs=1e-7)


def test_metrics_recomputed_from_weights(example: bondfolio.Decision) -> None:
    u, w = example.universe, example.weights.to_numpy()
    assert example.metrics["expected_apy"] == pytest.approx(float(u.apy @ w), abs=1e-12)
    assert example.metrics["duration"] == pytest.approx(float(u.numeric("duration") @ w), abs=1e-12)
    f = example.snapshot.risk.factors
    assert f is not None
    dense = f.loadings @ f.factor_covariance @ f.loadings.T + np.diag(f.specific_variance)
    assert example.metrics["volatility"] == pytest.approx(np.sqrt(w @ dense @ w), rel=1e-10)
    assert example.metrics["objective"] == pytest.approx(example.metrics["solver_objective"], abs=1e-7)


def test_binding_rows_have_duals_and_zero_slack(example: bondfolio.Decision) -> None:
    binding = example.binding
    assert binding
    for row in binding:
        assert row["slack"] <= 1e-6 and row["dual"] is not None
    slack_rows = [r for r in example.constraint_rows if r["slack"] > 1e-4]
    assert all(abs(r["dual"]) < 1e-6 for r in slack_rows)  # complementary slackness


def test_json_deterministic_apart_from_timing() -> None:
    runs = []
    for _ in range(3):
        d = bondfolio.allocate(EXAMPLE / "snapshot.json", EXAMPLE / "policy.toml", EXAMPLE / "holdings.json")
        data = d.to_dict()
        data.pop("timing")
        runs.append(json.dumps(data, allow_nan=False))
    assert runs[0] == runs[1] == runs[2]


def test_inputs_hash_identifies_inputs() -> None:
    snap = snapshot([opportunity("a", 0.05), opportunity("b", 0.04)])
    a = bondfolio.allocate(snap, policy()).to_dict()["provenance"]
    b = bondfolio.allocate(json.dumps(snap), policy()).to_dict()["provenance"]
    snap["opportunities"][1]["apy"] = 0.041
    c = bondfolio.allocate(snap, policy()).to_dict()["provenance"]
    assert a["inputs_sha256"] == b["inputs_sha256"] != c["inputs_sha256"]
    assert a["policy_sha256"] == c["policy_sha256"] and a["snapshot_sha256"] != c["snapshot_sha256"]
    assert set(a["versions"]) >= {"bondfolio", "cvxpy", "clarabel", "numpy"}


def test_effective_policy_recorded() -> None:
    d = bondfolio.allocate(snapshot([opportunity("a", 0.05), opportunity("b", 0.04)]), policy())
    kinds = [c["kind"] for c in d.to_dict()["provenance"]["effective_policy"]["constraints"]]
    assert kinds == ["budget", "long_only"]  # the implicit ones, shown


@pytest.mark.parametrize(("nav", "kind"), [(1_300_000.0, "deposit"), (700_000.0, "redemption")])
def test_a_policy_nav_other_than_the_holdings_is_a_stated_cash_flow(nav: float, kind: str) -> None:
    from tests.factories import opportunity, policy, snapshot

    snap = snapshot([opportunity("a", 0.05, protocol="pa"), opportunity("b", 0.04, protocol="pb")])
    hold = {"positions": {"a": 600_000.0, "b": 400_000.0}, "cash": 0.0}
    d = bondfolio.allocate(snap, policy({"kind": "max_weight", "max": 0.7}, nav=nav), hold)
    flow = d.to_dict()["flow"]
    assert flow == {"kind": kind, "amount": pytest.approx(nav - 1_000_000.0), "holdings_worth": 1_000_000.0,
                    "nav": nav}
    assert f"cash flow: a {kind} of {abs(nav - 1_000_000.0):,.0f} USD" in d.table()
    # current weights are the holdings over the policy's NAV, and the trades fund (or release) the flow
    assert d.to_frame().loc["a", "current_weight"] == pytest.approx(600_000.0 / nav)
    assert sum(t["amount"] for t in d.to_dict()["trades"]) == pytest.approx(nav - 1_000_000.0, abs=1e-3)
    same = bondfolio.allocate(snap, policy({"kind": "max_weight", "max": 0.7}, nav=1_000_000.0), hold)
    assert "flow" not in same.to_dict()
