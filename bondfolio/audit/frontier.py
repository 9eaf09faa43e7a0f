"""The efficient frontier: the policy's optimum as its risk aversion is swept.

The program is compiled once. When its objective is linear but for the risk term and its
constraints are linear (plus hard volatility caps), the optimum is a piecewise-affine function of
``t = 1 / risk_aversion`` and the sweep follows it exactly, breakpoint to breakpoint
(:class:`bondfolio.solver.path.SolutionPath`: one cold solve to start, then one sparse KKT update
per change of the active set); each point's solver is ``PATH``. Otherwise (fixed costs, rate
impact, conic penalties) every point is a full cold solve of the policy's solver order, and the
``solver`` column says which solver answered. Either way every point is checked independently
(every row of every constraint in numpy, ``check_max_violation``) and must be optimal: a path
point that fails its KKT certificate or the check is solved cold instead, and says so in
``method``.

The grid is ``0`` (the highest yield the constraints allow), then ``points - 2`` values spaced
geometrically over ``[1e-2, 1e3] x gamma_c``, where ``gamma_c = (max apy - min apy) / sigma_0^2`` is
the risk aversion at which the risk term of the highest-yield allocation (volatility ``sigma_0``)
matches the yield spread, plus the policy's own risk aversion (the decision's point).
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bondfolio.constraints.variables import Point
from bondfolio.errors import InputError, SolverError
from bondfolio.solver.api import HoldingsLike, PolicyLike, SnapshotLike, load_inputs
from bondfolio.solver.decision import Decision
from bondfolio.solver.path import KKT_TOLERANCE, LP_GAP, METHOD, PathPoint, PathUnavailable, SolutionPath
from bondfolio.solver.program import Program, Solution

__all__ = ["Frontier", "frontier"]

#: Span of the geometric grid around the characteristic risk aversion.
SPAN = (1e-2, 1e3)


@dataclass
class Frontier:
    """Frontier points (one row per risk aversion, ascending) and which one is the policy's."""

    frame: pd.DataFrame
    policy: str
    policy_risk_aversion: float
    seconds: float
    compile_seconds: float
    method: str = "path"
    """``"path"`` (the solution path, see :mod:`bondfolio.solver.path`) or ``"cold solves"``."""
    path_unavailable: str | None = None
    """Why the sweep is not on the path (when it is not)."""
    breakpoints: int = 0
    """Active-set changes the path crossed."""
    path_backend: str | None = None
    """How the path solved its KKT systems (:attr:`bondfolio.solver.path.SolutionPath.backend`)."""
    weights: pd.DataFrame | None = None
    """The allocations, one row per row of :attr:`frame` (columns: opportunity ids, fractions of NAV)."""

    def to_csv(self) -> str:
        buf = io.StringIO()
        self.frame.to_csv(buf, index=False, float_format="%.10g", lineterminator="\n")
        return buf.getvalue()

    def plot(self, ax: Any = None) -> Any:
        """Expected APY against volatility, the policy's point marked; returns the matplotlib figure."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        f = self.frame
        ax.plot(f["volatility"] * 100, f["expected_apy"] * 100, "o-", ms=3, lw=1.2, color="#2b6cb0",
                label="frontier (risk aversion swept)")
        mine = f[f["is_policy"]]
        ax.plot(mine["volatility"] * 100, mine["expected_apy"] * 100, "o", ms=9, color="#c05621",
                label=f"policy (risk aversion {self.policy_risk_aversion:g})")
        ax.set_xlabel("volatility, % a year")
        ax.set_ylabel("expected APY, %")
        ax.set_title(f"efficient frontier: policy '{self.policy}'")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        return fig if fig is not None else ax.figure

    def write_png(self, path: Any) -> None:
        import matplotlib.pyplot as plt

        fig = self.plot()
        fig.tight_layout()
        fig.savefig(path, format="png", metadata={"Software": None})
        plt.close(fig)


def frontier(snapshot: SnapshotLike, policy: PolicyLike, holdings: HoldingsLike | None = None, points: int = 50,
             risk_aversions: list[float] | None = None) -> Frontier:
    """Sweep the risk aversion over one compiled program (see the module docstring).

    Raises as :func:`~bondfolio.allocate` (an infeasible policy is infeasible at every point).
    """
    if risk_aversions is None and points < 3:
        raise InputError(f"frontier: points must be at least 3 (got {points})")
    start = time.perf_counter()
    inputs = load_inputs(snapshot, policy, holdings)
    u, pol = inputs.universe, inputs.policy
    program = Program(u, pol, with_risk=True)
    own = pol.objective.risk_aversion
    if risk_aversions is not None:
        grid = sorted({float(g) for g in risk_aversions} | {own})
        if grid[0] < 0:
            raise InputError(f"frontier: risk aversions must be >= 0 (got {grid[0]})")
    sweep = _Sweep(inputs, program)
    if risk_aversions is None:
        sweep.run([0.0, own])
        sigma0 = sweep.rows[0.0]["volatility"]
        apy = np.asarray(u.apy)
        spread = max(float(apy.max() - apy.min()), 1e-4)
        gamma_c = spread / max(sigma0**2, 1e-10)
        grid = sorted({0.0, *np.geomspace(SPAN[0] * gamma_c, SPAN[1] * gamma_c, points - 2).tolist(), own})
    sweep.run(grid)
    frame = pd.DataFrame([sweep.rows[g] for g in grid])
    frame.insert(1, "is_policy", np.isclose(frame["risk_aversion"], own, rtol=0, atol=0))
    weights = pd.DataFrame(np.array([sweep.weights[g] for g in grid]), columns=pd.Index(u.ids, name="id"))
    return Frontier(frame, pol.name, own, time.perf_counter() - start, program.build_seconds,
                    method=sweep.method, path_unavailable=sweep.unavailable,
                    breakpoints=0 if sweep.path is None else sweep.path.steps, weights=weights,
                    path_backend=None if sweep.path is None else sweep.path.backend)


class _Sweep:
    """The points of one frontier, on the solution path when the program has one (else cold solves)."""

    def __init__(self, inputs: Any, program: Program) -> None:
        self.inputs = inputs
        self.program = program
        self.rows: dict[float, dict[str, Any]] = {}
        self.weights: dict[float, np.ndarray] = {}
        self.unavailable: str | None = None
        self.path: SolutionPath | None = None
        try:
            self.path = SolutionPath.from_program(program)
        except PathUnavailable as exc:
            self.unavailable = str(exc)

    @property
    def method(self) -> str:
        return "path" if self.path is not None else "cold solves"

    def run(self, gammas: list[float]) -> None:
        todo = [g for g in gammas if g not in self.rows]
        if not todo:
            return
        found: dict[float, PathPoint] = {}
        own = self.program.policy.objective.risk_aversion
        positive = sorted(g for g in todo if g > 0)
        begin = own if own > 0 else positive[len(positive) // 2] if positive else None
        if self.path is not None and (begin is not None or self.path.started):
            try:
                found = self.path.points(todo, start=begin or 0.0)
            except (PathUnavailable, SolverError) as exc:
                self.unavailable = str(exc)
                self.path = None
        tol = self.program.policy.solver.check_tolerance
        for gamma in todo:
            p = found.get(gamma)
            if p is not None:
                violation = self.program.max_violation(p.point)
                residual = max(v for k, v in p.kkt.items() if k != "lp_gap")
                if violation <= tol and residual <= KKT_TOLERANCE and p.kkt.get("lp_gap", 0.0) <= LP_GAP * 10:
                    self._row(gamma, p.point, p.objective, METHOD, "optimal", violation, residual, "path",
                              p.breakpoints)
                    continue
                why = (f"path point failed (check {violation:.2g}, KKT residual {residual:.2g}): solved cold")
            elif self.path is None:
                why = "cold solve"
            else:
                why = "cold solve (the path starts at a positive risk aversion)"
            self.program.update(risk_aversion=gamma)
            sol = self.program.solve(reuse=False)
            self._row(gamma, sol.point, sol.objective, sol.solver, sol.status, sol.max_violation, math.nan, why, 0)

    def _row(self, gamma: float, point: Point, objective: float, solver: str, status: str, violation: float,
             residual: float, method: str, breakpoints: int) -> None:
        inputs, program = self.inputs, self.program
        program.update(risk_aversion=gamma)
        sol = Solution(point=point, solver=solver, status=status, inaccurate=False, objective=objective,
                       attempts=[], checks=[], duals=[], compile_seconds=program.build_seconds, solve_seconds=0.0,
                       solver_seconds=None)
        m = Decision(inputs.snapshot, program.policy, inputs.holdings, program, sol).metrics
        self.weights[gamma] = point.w
        self.rows[gamma] = {"risk_aversion": gamma, "expected_apy": m["expected_apy"], "volatility": m["volatility"],
                            "duration": m["duration"], "expected_failure_loss": m["expected_failure_loss"],
                            "objective": m["objective"], "cash_weight": m["cash_weight"], "turnover": m["turnover"],
                            "solver": solver, "status": status, "method": method, "check_max_violation": violation,
                            "kkt_residual": residual, "breakpoints": breakpoints}
