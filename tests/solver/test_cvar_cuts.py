"""CVaR by aggregated scenarios (bondfolio/solver/cvar_cuts.py): the same optimum as the full
Rockafellar-Uryasev LP and as bare formulations written here (scipy's LP, cvxpy + Clarabel), the
penalty form, infeasible limits, convergence counts, the partition's arithmetic by hand, and the record."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import linprog

import bondfolio
from bondfolio.audit.explain import explain
from bondfolio.audit.replay import replay
from bondfolio.constraints import cvar as cvar_module
from bondfolio.inputs import Universe, load_snapshot
from bondfolio.inputs.policy import load_policy
from bondfolio.inputs.scenarios import build_scenarios, load_scenarios
from bondfolio.solver import cvar_cuts
from bondfolio.solver.cvar_cuts import GAP, Block, Master, MasterAnswer, Unbounded, refine, run_loop
from bondfolio.solver.decision import Decision
from bondfolio.solver.program import Program
from bondfolio.solver.record import load_decision
from tests.factories import EXAMPLE, WTOL, policy, reseal
from tests.solver.test_risk_hedges import independent_cvar, independent_optimum, random_book


def scenarios_of(snap: dict[str, Any], spec: dict[str, Any]) -> tuple[Universe, np.ndarray, np.ndarray]:
    u = Universe.build(load_snapshot(snap), None, 1e6)
    s = build_scenarios(u, load_scenarios(spec["scenarios"]))
    return u, s.losses, s.probability


def bare_lp(snap: dict[str, Any], spec: dict[str, Any], limit: float | None, rho: float) -> float:
    """max mu w - rho CVaR(w), CVaR(w) <= limit, fully invested, long-only: the Rockafellar-Uryasev LP
    written directly for scipy's LP solver (no bondfolio program, no cvxpy); returns the optimum."""
    u, losses, prob = scenarios_of(snap, spec)
    m, n, tail = losses.shape[0], u.n, 1.0 - spec["alpha"]
    mu = u.apy - u.expected_loss_rate
    # x = [w (n), t, e (m)]
    cvar_row = np.concatenate([np.zeros(n), [1.0], prob / tail])
    c = np.concatenate([-mu, np.zeros(1 + m)]) + rho * cvar_row
    a_ub = sparse.hstack([sparse.csr_matrix(losses), -np.ones((m, 1)), -sparse.identity(m)]).tocsr()
    b_ub = np.zeros(m)
    if limit is not None:
        a_ub = sparse.vstack([a_ub, sparse.csr_matrix(cvar_row)]).tocsr()
        b_ub = np.append(b_ub, limit)
    a_eq = np.concatenate([np.ones(n), np.zeros(1 + m)])[None, :]
    bounds = [(0, None)] * n + [(None, None)] + [(0, None)] * m
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0], bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return float(-res.fun)


def least_cvar(snap: dict[str, Any], spec: dict[str, Any]) -> float:
    """The least CVaR of any fully invested long-only portfolio (scipy's LP)."""
    u, losses, prob = scenarios_of(snap, spec)
    m, n, tail = losses.shape[0], u.n, 1.0 - spec["alpha"]
    c = np.concatenate([np.zeros(n), [1.0], prob / tail])
    a_ub = sparse.hstack([sparse.csr_matrix(losses), -np.ones((m, 1)), -sparse.identity(m)]).tocsr()
    a_eq = np.concatenate([np.ones(n), np.zeros(1 + m)])[None, :]
    bounds = [(0, None)] * n + [(None, None)] + [(0, None)] * m
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=[1.0], bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


def binding_limit(snap: dict[str, Any], spec: dict[str, Any], gamma: float) -> float:
    """Halfway between the least CVaR and the CVaR of the optimum without a limit: feasible, and binding."""
    _, losses, prob = scenarios_of(snap, spec)
    free = bondfolio.allocate(snap, policy(gamma=gamma)).weights.to_numpy()
    top = independent_cvar(losses @ free, prob, spec["alpha"])
    least = least_cvar(snap, spec)
    assert top > least + 1e-3  # the book has room between the two
    return 0.5 * (least + top)


def cvar_row(d: bondfolio.Decision) -> dict[str, Any]:
    return next(r for r in d.constraint_rows if r["kind"] == "cvar")


def method(d: bondfolio.Decision) -> dict[str, Any]:
    (report,) = d.to_dict()["solver"]["cvar"]
    return dict(report)


# ---------------------------------------------------------------------------------------------- optimum
@pytest.mark.parametrize("gamma", [0.0, 2.0], ids=["lp-highs", "qp-clarabel"])
@pytest.mark.parametrize("seed", range(5))
def test_same_optimum_as_the_full_lp_and_a_bare_formulation(seed: int, gamma: float) -> None:
    snap, spec = random_book(seed)
    limit = binding_limit(snap, spec, gamma)
    full = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, "method": "full", **spec}, gamma=gamma))
    agg = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, "method": "aggregated", **spec}, gamma=gamma))
    bare = bare_lp(snap, spec, limit, 0.0) if gamma == 0 else independent_optimum(snap, spec, limit, gamma)
    assert agg.check["passed"] and full.check["passed"]
    assert agg.metrics["objective"] == pytest.approx(full.metrics["objective"], abs=1e-7)
    assert agg.metrics["objective"] == pytest.approx(bare, abs=1e-7)
    # the limit binds: the answer sits on it, with a positive price
    assert cvar_row(agg)["value"] == pytest.approx(limit, abs=1e-7)
    assert cvar_row(agg)["value"] <= limit + 1e-9
    assert cvar_row(agg)["dual"] > 0
    assert cvar_row(agg)["dual"] == pytest.approx(cvar_row(full)["dual"], rel=1e-3, abs=1e-6)
    # the independent check recomputed CVaR by sorting the losses of the final weights
    _, losses, prob = scenarios_of(snap, spec)
    w = agg.weights.to_numpy()
    assert cvar_row(agg)["value"] == pytest.approx(independent_cvar(losses @ w, prob, spec["alpha"]), abs=1e-9)
    report = method(agg)
    assert report["method"] == "aggregated" and report["scenarios"] == losses.shape[0]
    assert agg.solution.solver == ("HIGHS" if gamma == 0 else "CLARABEL")
    assert method(full) == {"constraint": report["constraint"], "method": "full", "scenarios": losses.shape[0]}


@pytest.mark.parametrize("rho", [0.05, 0.5, 5.0])
@pytest.mark.parametrize("seed", [0, 3])
def test_penalty_form_same_optimum(seed: int, rho: float) -> None:
    snap, spec = random_book(seed)
    agg = bondfolio.allocate(snap, policy({"kind": "cvar", "penalty": rho, "method": "aggregated", **spec}))
    full = bondfolio.allocate(snap, policy({"kind": "cvar", "penalty": rho, "method": "full", **spec}))
    assert agg.check["passed"]
    assert agg.metrics["objective"] == pytest.approx(bare_lp(snap, spec, None, rho), abs=1e-7)
    assert agg.metrics["objective"] == pytest.approx(full.metrics["objective"], abs=1e-7)
    assert agg.metrics["penalties"] == pytest.approx(rho * cvar_row(agg)["value"], rel=1e-12)
    # the answer's true CVaR is within GAP of the master's bound: what the objective charged is what it is
    assert method(agg)["gap"] <= GAP


def test_limit_and_penalty_together() -> None:
    snap, spec = random_book(2)
    limit = binding_limit(snap, spec, 0.0)
    agg = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, "penalty": 0.2, "method": "aggregated",
                                           **spec}))
    assert agg.metrics["objective"] == pytest.approx(bare_lp(snap, spec, limit, 0.2), abs=1e-7)
    assert cvar_row(agg)["value"] <= limit + 1e-9


def test_two_cvar_constraints_each_aggregated() -> None:
    snap, spec = random_book(4)
    limit = binding_limit(snap, spec, 0.0)
    loose = {**spec, "alpha": 0.5}
    d = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, "method": "aggregated", **spec},
                                        {"kind": "cvar", "max": 1.0, "method": "aggregated", "name": "median tail",
                                         **loose}))
    full = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, **spec},
                                           {"kind": "cvar", "max": 1.0, "name": "median tail", **loose}))
    assert d.check["passed"]
    assert [r["method"] for r in d.to_dict()["solver"]["cvar"]] == ["aggregated", "aggregated"]
    assert d.metrics["objective"] == pytest.approx(full.metrics["objective"], abs=1e-7)


# ---------------------------------------------------------------------------------------------- infeasible
def test_an_infeasible_limit_raises_with_a_diagnosis() -> None:
    # fully invested and long-only, every position loses in the worst 10 % of the normal samples: CVaR 0 is
    # out of reach, and the full LP agrees
    snap, spec = random_book(1)
    pol = policy({"kind": "cvar", "max": 0.0, "method": "aggregated", **spec})
    with pytest.raises(bondfolio.InfeasibleError, match=r"is infeasible.*aggregated scenarios' master") as exc:
        bondfolio.allocate(snap, pol)
    assert exc.value.diagnosis is not None  # diagnosed on the full scenario rows (the elastic program)
    assert any(c.startswith("cvar") for c in exc.value.diagnosis.conflict)
    with pytest.raises(bondfolio.InfeasibleError, match="is infeasible"):
        bondfolio.allocate(snap, policy({"kind": "cvar", "max": 0.0, "method": "full", **spec}))


# ---------------------------------------------------------------------------------------------- convergence
@pytest.mark.parametrize("seed", range(5))
def test_converges_in_few_master_solves_with_few_groups(seed: int) -> None:
    snap, spec = random_book(seed)
    limit = binding_limit(snap, spec, 0.0)
    d = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, "method": "aggregated", **spec}))
    report = method(d)
    assert 2 <= report["master_solves"] <= 25  # one group first: the limit binds, so at least one refinement
    assert report["groups"] <= report["scenarios"] // 10
    assert report["gap"] <= GAP
    assert f"{report['master_solves']} master solves" in d.solution.attempts[-1].detail
    assert "scenarios aggregated into" in d.table()


def test_splits_alone_also_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    # without merges the partition only refines: finitely many steps, the same optimum
    snap, spec = random_book(0)
    limit = binding_limit(snap, spec, 0.0)
    pol = policy({"kind": "cvar", "max": limit, "method": "aggregated", **spec})
    merged = bondfolio.allocate(snap, pol)
    monkeypatch.setattr(cvar_cuts, "MERGE_ITERATIONS", 0)
    split = bondfolio.allocate(snap, pol)
    assert split.metrics["objective"] == pytest.approx(merged.metrics["objective"], abs=1e-9)
    assert method(split)["groups"] >= method(merged)["groups"]


def test_refine_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    loss = np.array([0.9, 0.2, 0.8, 0.1, 0.05, 0.5])
    # splits only: group 0 straddles t = 0.3 (0.9 and 0.8 above, 0.2 below); groups 1 and 2 do not
    assert refine(labels, loss, 0.3, None, None).tolist() == [1, 0, 1, 2, 2, 3]
    # with prices: group 0 wholly in the tail (1), group 1 wholly out (0), group 2 on the boundary (0.5);
    # previous losses 0.01 away, t unchanged: every scenario is farther from t than it moved, except 0.2
    # (|0.2 - 0.3| = 0.1 > 0.01 too) -- so 0.9 and 0.8 join the tail group, 0.1 and 0.05 the body group,
    # 0.2 (below t in a tail-priced group) stays apart, and 0.5 keeps its own group
    price = np.array([1.0, 0.0, 0.5])
    previous = (loss - 0.01, 0.3)
    assert refine(labels, loss, 0.3, price, previous).tolist() == [0, 2, 0, 1, 1, 3]
    # a scenario that moved more than its distance to t is not merged
    moved = (loss - np.array([0.0, 0.0, 0.6, 0.0, 0.0, 0.0]), 0.3)
    assert refine(labels, loss, 0.3, price, moved).tolist() == [0, 2, 3, 1, 1, 4]


def test_group_rows_are_probability_weighted_means() -> None:
    snap, spec = random_book(0)
    d = bondfolio.allocate(snap, policy({"kind": "cvar", "penalty": 0.1, "method": "aggregated", **spec}))
    (block,) = cvar_cuts.blocks_of(d.program)
    losses, prob = block.losses, block.probability
    block.labels = (np.arange(block.active.size) % 3).astype(np.int64)
    pg, lbar = block.rows()
    for g in range(3):
        members = block.active[block.labels == g]
        assert pg[g] == pytest.approx(prob[members].sum(), rel=1e-12)
        assert lbar[g] == pytest.approx(prob[members] @ losses[members] / prob[members].sum(), rel=1e-12, abs=1e-15)
    # a group's multiplier spread over its members by probability keeps its total
    duals = np.array([1.0, 2.0, 3.0])
    spread = block.multipliers(duals)
    assert spread.sum() == pytest.approx(6.0, rel=1e-12)
    assert spread @ losses == pytest.approx(duals @ lbar, rel=1e-9, abs=1e-15)


class _Stub(Master):
    """A master that is unbounded until every scenario has its own group, then returns ``answer``."""

    def __init__(self, answer: MasterAnswer) -> None:
        self.answer = answer
        self.groups: list[int] = []
        self.problem = None
        self.inaccurate = False

    def set_groups(self, blocks: list[Block]) -> None:
        self.groups.append(blocks[0].groups)

    def solve(self) -> MasterAnswer:
        if self.groups[-1] == 1:
            raise Unbounded()
        return self.answer


def test_an_unbounded_master_is_solved_again_with_every_scenario_alone() -> None:
    snap, spec = random_book(0)
    d = bondfolio.allocate(snap, policy({"kind": "cvar", "penalty": 0.1, "method": "aggregated", **spec}))
    (block,) = cvar_cuts.blocks_of(d.program)
    w = d.weights.to_numpy()
    value = cvar_module.cvar(block.losses @ w, block.probability, block.alpha)[0]
    stub = _Stub(MasterAnswer(w, [value], [0.0], [np.zeros(block.active.size)], [0.0]))
    run_loop(stub, [block], "test")
    assert stub.groups == [1, block.active.size]


# ---------------------------------------------------------------------------------------------- choice, record
def test_large_blocks_are_aggregated_unless_the_constraint_says(monkeypatch: pytest.MonkeyPatch) -> None:
    snap, spec = random_book(0)
    limit = binding_limit(snap, spec, 0.0)
    monkeypatch.setattr(cvar_module, "AGGREGATE_ENTRIES", 100)
    auto = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, **spec}))
    forced = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, "method": "full", **spec}))
    assert method(auto)["method"] == "aggregated" and method(forced)["method"] == "full"
    # the method says how the constraint is solved, not what it is: it is not in the label
    assert method(auto)["constraint"] == method(forced)["constraint"] == cvar_row(forced)["constraint"]
    assert "method" not in auto.to_dict()["provenance"]["effective_policy"]["constraints"][-1]
    assert forced.to_dict()["provenance"]["effective_policy"]["constraints"][-1]["method"] == "full"
    with pytest.raises(bondfolio.InputError, match="method"):
        bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, "method": "sampled", **spec}))


def test_records_without_the_method_field_still_verify_and_replay() -> None:
    snap, spec = random_book(0)
    d = bondfolio.allocate(snap, policy({"kind": "cvar", "max": binding_limit(snap, spec, 0.0), **spec}))
    record = load_decision(d.to_json())
    assert [r.method for r in record.solver.cvar or []] == ["full"]
    # a record as written before solver.cvar existed: no such key, sealed without it
    old = copy.deepcopy(d.to_dict())
    del old["solver"]["cvar"]
    old = reseal(old)
    loaded = load_decision(old)
    assert loaded.solver.cvar is None and "cvar" not in loaded.to_dict()["solver"]
    result = replay(old)
    assert result.verdict == "equivalent"
    assert [x.path for x in result.differences] == ["solver.cvar"]


def test_explain_prices_cvar_from_the_aggregated_multipliers() -> None:
    snap, spec = random_book(3)
    limit = binding_limit(snap, spec, 0.0)
    prices = []
    for m in ("full", "aggregated"):
        d = bondfolio.allocate(snap, policy({"kind": "cvar", "max": limit, "method": m, **spec}))
        ex = explain(d, max_exact=0)
        label = cvar_row(d)["constraint"]
        by_id = {p["id"]: {x["constraint"]: x["price"] for x in p["drivers"]} for p in ex.positions}
        prices.append(np.array([by_id[i].get(label, 0.0) for i in sorted(by_id)]))
        assert not any("finite difference" in n for n in ex.notes)
    assert prices[1] == pytest.approx(prices[0], abs=WTOL)
    assert np.any(prices[1] != 0)


def test_fixed_costs_branch_and_bound_over_aggregated_scenarios() -> None:
    # the example gate (fixed gas per leg, so branch and bound over the trade patterns) with its cvar
    # constraint solved both ways: the same trades and optimum
    gate = tomllib.loads((EXAMPLE / "gate.toml").read_text())
    gate.pop("rebalance")
    decisions = {}
    for how in ("full", "aggregated"):
        pol = copy.deepcopy(gate)
        next(c for c in pol["constraints"] if c["kind"] == "cvar")["method"] = how
        decisions[how] = bondfolio.allocate(EXAMPLE / "snapshot.json", pol, EXAMPLE / "holdings.json")
    full, agg = decisions["full"], decisions["aggregated"]
    assert agg.solution.mixed is not None and agg.solution.mixed["method"] == "branch-and-bound"
    assert agg.check["passed"] and method(agg)["method"] == "aggregated"
    assert agg.metrics["objective"] == pytest.approx(full.metrics["objective"], abs=1e-7)
    assert agg.weights.to_numpy() == pytest.approx(full.weights.to_numpy(), abs=WTOL)


def test_a_solve_does_not_depend_on_what_the_program_solved_before() -> None:
    # Program.solve starts the partition afresh: solving again, after another limit, seals the same record
    snap, spec = random_book(2)
    limit = binding_limit(snap, spec, 0.0)
    pol = load_policy(policy({"kind": "cvar", "max": limit, "method": "aggregated", **spec}))
    program = Program(Universe.build(load_snapshot(snap), None, pol.nav), pol)
    first = Decision(load_snapshot(snap), pol, None, program, program.solve(reuse=True)).record
    k = next(i for i, c in enumerate(program.compiled) if c.constraint.kind == "cvar")
    program.set_row_bound(k, 0, -np.inf, 1.2 * limit)
    program.solve(reuse=True)
    program.set_row_bound(k, 0, -np.inf, limit)
    again = Decision(load_snapshot(snap), pol, None, program, program.solve(reuse=True)).record
    assert again.sha256 == first.sha256
