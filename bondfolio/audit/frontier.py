"""The efficient frontier: one compiled program, its risk aversion swept as a parameter.

The program is compiled once with a DPP-compliant risk term (:meth:`Vars.risk_penalty`); every point
only assigns ``risk_aversion`` and re-solves (no canonicalization). Every point is a full, verified
solve of the policy (all constraints, the independent check), so each lies on the policy's frontier:
the best risk-adjusted allocation the constraints allow for that risk aversion.

The grid is ``0`` (the highest yield the constraints allow), then ``points - 2`` values spaced
geometrically over ``[1e-2, 1e3] x gamma_c``, where ``gamma_c = (max apy - min apy) / sigma_0^2`` is
the risk aversion at which the risk term of the highest-yield allocation (volatility ``sigma_0``)
matches the yield spread, plus the policy's own risk aversion (the decision's point).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bondfolio.errors import InputError
from bondfolio.solver.api import HoldingsLike, PolicyLike, SnapshotLike, load_inputs
from bondfolio.solver.decision import Decision
from bondfolio.solver.program import Program

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
    rows: list[dict[str, Any]] = []

    def point(gamma: float) -> None:
        program.update(risk_aversion=gamma)
        sol = program.solve(reuse=True)
        m = Decision(inputs.snapshot, pol, inputs.holdings, program, sol).metrics
        rows.append({"risk_aversion": gamma, "expected_apy": m["expected_apy"], "volatility": m["volatility"],
                     "duration": m["duration"], "expected_failure_loss": m["expected_failure_loss"],
                     "objective": m["objective"], "cash_weight": m["cash_weight"], "turnover": m["turnover"],
                     "solver": sol.solver, "check_max_violation": sol.max_violation})

    if risk_aversions is not None:
        grid = sorted({float(g) for g in risk_aversions} | {own})
        if grid[0] < 0:
            raise InputError(f"frontier: risk aversions must be >= 0 (got {grid[0]})")
    else:
        point(0.0)
        sigma0 = rows[0]["volatility"]
        apy = np.asarray(u.apy)
        spread = max(float(apy.max() - apy.min()), 1e-4)
        gamma_c = spread / max(sigma0**2, 1e-10)
        grid = sorted({*np.geomspace(SPAN[0] * gamma_c, SPAN[1] * gamma_c, points - 2).tolist(), own})
    for gamma in grid:
        if gamma == 0.0 and rows and rows[0]["risk_aversion"] == 0.0:
            continue
        point(gamma)
    frame = pd.DataFrame(rows).sort_values("risk_aversion", kind="stable").reset_index(drop=True)
    frame.insert(1, "is_policy", np.isclose(frame["risk_aversion"], own, rtol=0, atol=0))
    compile_seconds = program.build_seconds
    return Frontier(frame, pol.name, own, time.perf_counter() - start, compile_seconds)

