"""The direct conic assembly (:mod:`bondfolio.solver.direct`) against cvxpy's canonicalization, the reference.

The same program is solved twice, once from the directly assembled data and once through
``problem.solve``: weights, cash, the objective and every family's reported duals must agree (they are
the same data in the same order, so in practice they agree bit for bit; the tolerances leave room for a
different BLAS). Programs outside the covered shape must go through cvxpy, and say so in the record.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import bondfolio
from bondfolio.inputs import load_policy
from bondfolio.solver.api import load_inputs
from bondfolio.solver.direct import assemble
from bondfolio.solver.program import Program
from bondfolio.solver.solve import OBJECTIVE_SCALE, SOLVER_OPTIONS

ROOT = Path(__file__).resolve().parents[2]


def _books() -> ModuleType:
    """benchmarks/books.py: synthetic books with a factor model and every constraint family."""
    spec = importlib.util.spec_from_file_location("bench_books", ROOT / "benchmarks" / "books.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


books = _books()


def _with(policy: Any, drop: tuple[str, ...] = (), add: tuple[dict[str, Any], ...] = (),
          objective: dict[str, Any] | None = None) -> Any:
    data = policy.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["constraints"] = [c for c in data["constraints"] if c["kind"] not in drop] + list(add)
    data["objective"].update(objective or {})
    return load_policy(data)


def _both(snapshot: Any, policy: Any, holdings: Any) -> tuple[Program, Program]:
    """The program solved from the direct assembly, and the same program solved through cvxpy."""
    inputs = load_inputs(snapshot, policy, holdings)
    direct, reference = Program(inputs.universe, inputs.policy), Program(inputs.universe, inputs.policy)
    conic = assemble(direct, OBJECTIVE_SCALE)
    assert conic is not None
    conic.solve(SOLVER_OPTIONS["CLARABEL"])
    reference.problem.solve(solver="CLARABEL", ignore_dpp=True, **SOLVER_OPTIONS["CLARABEL"])
    return direct, reference


def _assert_same(direct: Program, reference: Program, weights: float = 1e-9, objective: float = 1e-10,
                 duals: tuple[float, float] = (1e-6, 1e-9)) -> None:
    """Same status, weights and cash (``weights``, of NAV), objective (``objective``, relative) and every
    family's duals (``duals``: relative, absolute in basis points)."""
    assert direct.problem.status == reference.problem.status == "optimal"
    np.testing.assert_allclose(direct.vars.w.value, reference.vars.w.value, rtol=0, atol=weights)
    assert float(direct.vars.cash.value) == pytest.approx(float(reference.vars.cash.value), abs=weights)
    assert direct.problem.value == pytest.approx(reference.problem.value, rel=objective)
    for a, b in zip(direct.compiled, reference.compiled, strict=True):
        np.testing.assert_allclose(a.duals(OBJECTIVE_SCALE), b.duals(OBJECTIVE_SCALE), rtol=duals[0], atol=duals[1],
                                   err_msg=a.constraint.label)


@pytest.mark.parametrize(("n", "seed"), [(40, 0), (250, 3)])
def test_every_family_matches_cvxpy(n: int, seed: int) -> None:
    snapshot, policy, holdings = books.book(n, seed=seed)
    direct, reference = _both(snapshot, policy, holdings)
    _assert_same(direct, reference)
    # the binding rows carry multipliers: the comparison above is not of zeros only
    assert max(float(np.abs(c.duals(OBJECTIVE_SCALE)).max()) for c in reference.compiled) > 1e-4


def test_equality_rows_and_a_linear_program_match_cvxpy() -> None:
    snapshot, policy, holdings = books.book(120, seed=1)
    duration = next(c for c in policy.constraints if c.kind == "duration")
    band = {"kind": "duration", "min": duration.target, "max": duration.target}  # lower == upper: a zero cone
    _assert_same(*_both(snapshot, _with(policy, drop=("duration",), add=(band,)), holdings))
    # no trade sizes, no factor exposures, no cone: an LP in (w, c)
    linear = _with(policy, drop=("duration", "turnover", "max_volatility"), add=(band,),
                   objective={"risk_aversion": 0.0, "trading_cost_bp": 0.0})
    direct, reference = _both(snapshot, linear, holdings)
    assert direct.vars.factor is None and not direct.vars.has_trade_size
    _assert_same(direct, reference)


def test_allocate_records_the_assembly_and_equals_cvxpy() -> None:
    snapshot, policy, holdings = books.book(150, seed=2)
    decision = bondfolio.allocate(snapshot, policy, holdings)
    assert decision.solution.options["assembly"] == "direct"
    assert decision.check["passed"]
    inputs = load_inputs(snapshot, policy, holdings)
    reference = Program(inputs.universe, inputs.policy)
    reference.problem.solve(solver="CLARABEL", ignore_dpp=True, **SOLVER_OPTIONS["CLARABEL"])
    np.testing.assert_allclose(decision.solution.point.w, reference.vars.w.value, rtol=0, atol=1e-9)
    assert decision.solution.objective == pytest.approx(reference.problem.value / OBJECTIVE_SCALE, rel=1e-10)


@pytest.mark.parametrize("shape", ["dense covariance", "capped liquidity buffer", "dpp"])
def test_other_shapes_go_through_cvxpy(shape: str) -> None:
    snapshot, policy, holdings = books.book(60, seed=4, dense=shape == "dense covariance")
    if shape == "capped liquidity buffer":  # without the 25 % share cap, min(w_i, a_i / NAV) is not linear
        policy = _with(policy, drop=("liquidity_share",))
    inputs = load_inputs(snapshot, policy, holdings)
    if shape != "dpp":
        assert assemble(Program(inputs.universe, inputs.policy), OBJECTIVE_SCALE) is None
    decision = bondfolio.allocate(snapshot, policy, holdings, dpp=shape == "dpp")
    assert decision.solution.options["assembly"] == "cvxpy"
    assert decision.check["passed"]
