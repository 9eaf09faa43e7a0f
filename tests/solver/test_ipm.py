"""The block-structured interior point (:mod:`bondfolio.solver.ipm`, ``BLOCK_IPM``).

Checked against closed forms on small programs (projection onto the simplex; a linear objective on an
ellipsoid) and against Clarabel, the reference, on the benchmark books with every constraint family:
weights, objective and every family's duals. Both solvers stop at relative residuals and gaps of
1e-9, so their optima agree to about the square root of that in weights on these well-conditioned books
(measured: 4e-7 at most); the tolerances below leave a factor of 10 to 30.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp

import bondfolio
from bondfolio.errors import InfeasibleError
from bondfolio.solver import ipm, solve
from bondfolio.solver.api import load_inputs
from bondfolio.solver.direct import assemble
from bondfolio.solver.program import Program
from bondfolio.solver.solve import OBJECTIVE_SCALE, SOLVER_OPTIONS

from .test_direct import _assert_same, _with, books


def _simplex_projection(c: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``c`` onto ``{x >= 0, sum x = 1}`` (the sort-based closed form)."""
    u = np.sort(c)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.flatnonzero(u - css / np.arange(1, c.size + 1) > 0)[-1]
    return np.maximum(c - css[k] / (k + 1), 0.0)


def test_projection_onto_the_simplex_with_a_two_sided_budget() -> None:
    # min 1/2 |x - c|^2  s.t.  x >= 0,  sum x <= 1  and  -sum x <= -1 (a budget as two opposite rows)
    rng = np.random.default_rng(7)
    n = 60
    c = rng.normal(0.0, 0.3, n)
    G = sp.vstack([-sp.eye(n), sp.csr_array(np.ones((1, n))), sp.csr_array(-np.ones((1, n)))]).tocsr()
    h = np.concatenate([np.zeros(n), [1.0, -1.0]])
    st = ipm.Structure.of(np.ones(n), -c, sp.csr_array((0, n)), np.zeros(0), G, h, None)
    assert st is not None
    assert st.merged.tolist() == [[n, n + 1]]  # the pair is solved as one equality row
    r = ipm.solve(st)
    assert r.status == "optimal"
    expected = _simplex_projection(c)
    np.testing.assert_allclose(r.x, expected, atol=1e-8)
    # multipliers: -x_i >= ... has z_i = max(0, theta - c_i) ... here the budget's theta = c_i - x_i on the support
    z, nu = st.multipliers(r.z, r.nu)
    theta = float(np.mean((c - expected)[expected > 1e-6]))
    assert nu.size == 0
    # one of the pair carries the budget's multiplier (theta > 0 pushes the sum down), the other is zero
    assert min(z[n], z[n + 1]) == 0.0
    assert z[n] - z[n + 1] == pytest.approx(theta, abs=1e-7)
    np.testing.assert_allclose(z[:n], np.maximum(theta - c, 0.0) * (expected <= 1e-9), atol=1e-7)


def test_linear_objective_on_an_ellipsoid_matches_the_closed_form() -> None:
    # min 1/2 eps |x|^2 - c'x  s.t.  1/2 x'Qx <= 1/2,  -1 <= x <= 1 (inactive): (eps + l Q_i) x_i = c_i with
    # sum Q_i x_i^2 = 1 fixes the cap's multiplier l (a one-dimensional root, found by brentq)
    rng = np.random.default_rng(3)
    n, eps = 40, 1e-3
    c = rng.normal(0.0, 1.0, n)
    Q = rng.uniform(5.0, 50.0, n)
    G = sp.vstack([sp.eye(n), -sp.eye(n)]).tocsr()
    st = ipm.Structure.of(np.full(n, eps), -c, sp.csr_array((0, n)), np.zeros(0), G, np.ones(2 * n), Q)
    assert st is not None
    r = ipm.solve(st)
    assert r.status == "optimal"
    lam = so.brentq(lambda t: float(np.sum(Q * (c / (eps + t * Q)) ** 2)) - 1.0, 1e-12, 1e6, xtol=1e-15)
    np.testing.assert_allclose(r.x, c / (eps + lam * Q), atol=1e-8)
    assert r.z_cap == pytest.approx(lam, rel=1e-7)
    assert float(r.x @ (Q * r.x)) == pytest.approx(1.0, abs=1e-9)


def _pair(snapshot: object, policy: object, holdings: object) -> tuple[Program, Program, ipm.Result]:
    """The program solved by BLOCK_IPM from the direct assembly, and the same program by Clarabel."""
    inputs = load_inputs(snapshot, policy, holdings)  # type: ignore[arg-type]
    ours, reference = Program(inputs.universe, inputs.policy), Program(inputs.universe, inputs.policy)
    conic = assemble(ours, OBJECTIVE_SCALE)
    assert conic is not None
    structure = conic.structure()
    assert structure is not None
    result = conic.solve_blocks(SOLVER_OPTIONS["BLOCK_IPM"], structure)
    reference_conic = assemble(reference, OBJECTIVE_SCALE)
    assert reference_conic is not None
    reference_conic.solve(SOLVER_OPTIONS["CLARABEL"])
    return ours, reference, result


@pytest.mark.parametrize(("n", "seed", "variant"), [(40, 0, "full"), (300, 1, "full"), (300, 1, "qp"),
                                                    (300, 1, "tight"), (1000, 1, "tight")])
def test_every_family_matches_clarabel(n: int, seed: int, variant: str) -> None:
    snapshot, policy, holdings = books.book(n, seed=seed)
    if variant == "qp":
        policy = _with(policy, drop=("max_volatility",))
    elif variant == "tight":  # the volatility cap binds
        data = policy.model_dump(mode="json", by_alias=True, exclude_none=True)
        cap = next(c for c in data["constraints"] if c["kind"] == "max_volatility")
        policy = _with(policy, drop=("max_volatility",), add=({**cap, "max": cap["max"] * 0.85},))
    ours, reference, result = _pair(snapshot, policy, holdings)
    assert result.status == "optimal"
    if variant == "tight":
        assert result.z_cap > 1e-3
    # weights to 1e-5 of NAV, the objective to 1e-8 (1e-9 relative gaps on both sides), duals to 3e-4 bp
    _assert_same(ours, reference, weights=1e-5, objective=1e-8, duals=(1e-3, 3e-4))
    assert max(float(np.abs(c.duals(OBJECTIVE_SCALE)).max()) for c in reference.compiled) > 1e-2
    # the independent check passes on the answer
    point = solve._point(ours)
    assert ours.check(point).max_violation <= 1e-9


def test_large_books_go_to_block_ipm_first_and_a_policy_can_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(solve, "BLOCK_IPM_MIN_N", 100)
    snapshot, policy, holdings = books.book(150, seed=4)
    decision = bondfolio.allocate(snapshot, policy, holdings)
    sol = decision.solution
    assert sol.solver == "BLOCK_IPM" and sol.order == solve.BLOCK_SOLVERS
    assert sol.order_from.startswith("shape: factor-model")
    assert sol.options["assembly"] == "direct" and decision.check["passed"]
    assert decision.record.solver.name == "BLOCK_IPM" and decision.record.solver.order == list(solve.BLOCK_SOLVERS)
    # the same inputs with Clarabel named by the policy: the same allocation
    data = policy.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["solver"] = {**data.get("solver", {}), "order": ["CLARABEL"]}
    other = bondfolio.allocate(snapshot, data, holdings)
    assert other.solution.solver == "CLARABEL" and other.solution.order_from == "policy"
    np.testing.assert_allclose(sol.point.w, other.solution.point.w, atol=1e-5)
    # compiled for re-solves (DPP, as backtests do): through cvxpy, Clarabel first
    dpp = bondfolio.allocate(snapshot, policy, holdings, dpp=True).solution
    assert dpp.solver == "CLARABEL" and dpp.order_from == "shape: QP or conic"
    assert [a.solver for a in dpp.attempts] == ["CLARABEL"]
    # small books keep Clarabel first
    monkeypatch.setattr(solve, "BLOCK_IPM_MIN_N", 2000)
    assert bondfolio.allocate(snapshot, policy, holdings).solution.solver == "CLARABEL"


def test_a_dense_covariance_is_not_its_shape() -> None:
    snapshot, policy, holdings = books.book(60, seed=5, dense=True)
    data = policy.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["solver"] = {"order": ["BLOCK_IPM", "CLARABEL"]}
    decision = bondfolio.allocate(snapshot, data, holdings)
    first, second = decision.solution.attempts
    assert (first.solver, first.status, first.accepted) == ("BLOCK_IPM", "not_applicable", False)
    assert "shape" in first.detail
    assert second.solver == "CLARABEL" and second.accepted


def test_an_infeasible_policy_is_certified_by_the_next_solver() -> None:
    snapshot, policy, holdings = books.book(80, seed=6)
    data = policy.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["solver"] = {"order": ["BLOCK_IPM", "CLARABEL"]}
    for c in data["constraints"]:
        if c["kind"] == "group_floor":
            c["limits"] = {"core": 0.99}  # with the liquidity buffer and the volatility cap: impossible
    inputs = load_inputs(snapshot, data, holdings)
    program = Program(inputs.universe, inputs.policy)
    conic = assemble(program, OBJECTIVE_SCALE)
    assert conic is not None
    structure = conic.structure()
    assert structure is not None
    result = ipm.solve(structure)
    assert result.status != "optimal"  # the method does not certify infeasibility; it must not claim an answer
    with pytest.raises(InfeasibleError, match="CLARABEL returned a certificate of infeasibility"):
        bondfolio.allocate(snapshot, data, holdings, diagnose_infeasible=False)


def test_three_variable_blocks_are_not_its_structure() -> None:
    # x0 + x1 + x2 <= 1 repeated per triple: local rows of three variables
    n = 9
    rows = [sp.csr_array((np.ones(3), ([0, 0, 0], [3 * t, 3 * t + 1, 3 * t + 2])), shape=(1, n)) for t in range(3)]
    G = sp.vstack([*rows, -sp.eye(n)]).tocsr()
    assert ipm.Structure.of(np.ones(n), -np.ones(n), sp.csr_array((0, n)), np.zeros(0), G,
                            np.concatenate([np.ones(3), np.zeros(n)]), None) is None
