"""SolutionPath's points, taken directly (no frontier wrapper), against independent cold Clarabel solves.

A random factor-risk book (every linear constraint family, trading costs, some positions not held),
points on both sides of the starting risk aversion and in an order that makes the path go back and
forth. Each point must equal a cold interior-point solve of the same compiled program at its risk
aversion: objective within 1e-8 relative and weights within 1e-7 absolute (fractions of NAV).

Why those tolerances: the path's point is exact up to its regularization (its ``bias``, below 1e-12
APY here, and a 1e-13 row shift); the error to cover is the reference's. Clarabel is run to a
relative duality gap and feasibility of 1e-11 (1e-10 or 1e-9 if it cannot reach that), so its
objective is within ~1e-10 relative; its weights are within ~1e-8 along directions of curvature
gamma x specific variance >= 20 x 1e-6 (an objective error e moves a weight by at most
sqrt(2 e / curvature)), and the flat directions (cash, trade sizes) are pinned by the constraints
at these points. Measured: weights within 8e-9, objectives within 6e-12 relative.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bondfolio.solver.api import load_inputs
from bondfolio.solver.path import KKT_TOLERANCE, SolutionPath
from bondfolio.solver.program import Program
from bondfolio.solver.solve import OBJECTIVE_SCALE
from tests.audit.test_frontier_path import book

OBJ_RTOL = 1e-8
W_TOL = 1e-7


def cold(program: Program, gamma: float) -> tuple[np.ndarray, float]:
    """Weights and objective (APY units, the program's sense) of a cold Clarabel solve at ``gamma``."""
    program.update(risk_aversion=gamma)
    for tol in (1e-11, 1e-10, 1e-9):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            program.problem.solve(solver="CLARABEL", ignore_dpp=True, tol_gap_abs=tol, tol_gap_rel=tol,
                                  tol_feas=tol, max_iter=400)
        if program.problem.status == "optimal":
            break
    assert program.problem.status == "optimal", (gamma, program.problem.status)
    return np.asarray(program.vars.w.value, dtype=float), float(program.problem.value) / OBJECTIVE_SCALE


@pytest.mark.parametrize("seed", [11, 12])
def test_path_points_equal_cold_clarabel_solves_at_several_risk_aversions(seed: int) -> None:
    snap, pol, holdings = book(60, seed=seed, vol_cap=None)
    inputs = load_inputs(snap, pol, holdings)
    program = Program(inputs.universe, inputs.policy, with_risk=True)
    path = SolutionPath.from_program(program)
    # first call: up and down from the start; second call: back across the start (the path goes on
    # from where it stopped, so it retraces its breakpoints the other way)
    first = path.points([0.5, 3.0, 60.0, 400.0], start=20.0)
    second = path.points([8.0, 1500.0, 1.0], start=20.0)
    points = {**first, **second}
    assert path.steps >= 20  # the working set changes many times between the points
    crossed = [p.breakpoints for p in points.values()]
    assert sum(b > 0 for b in crossed) >= 4
    reference = Program(inputs.universe, inputs.policy, with_risk=True)
    for gamma, p in sorted(points.items()):
        assert p.risk_aversion == gamma and not p.capped
        assert max(p.kkt.values()) <= KKT_TOLERANCE, (gamma, p.kkt)
        assert p.bias <= 1e-12
        assert reference.max_violation(p.point) <= 1e-9
        w, objective = cold(reference, gamma)
        assert abs(p.objective - objective) <= OBJ_RTOL * max(abs(objective), 1e-2), (gamma, p.objective, objective)
        assert float(np.abs(p.point.w - w).max()) <= W_TOL, (gamma, float(np.abs(p.point.w - w).max()))
