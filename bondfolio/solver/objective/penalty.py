"""``penalty:<label>``: the cost of a soft constraint in the objective."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Compiled
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.universe import Universe
from bondfolio.solver.objective.base import Term

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["Penalty"]

#: Step of the central differences of a penalty's marginal (weights are fractions of NAV).
STEP = 1e-6


class Penalty(Term):
    r"""A soft constraint's penalty: its first row, weighted.

    .. math:: f(w, c) = \rho \, g_0(w, c)

    ``rho`` the family's :meth:`~bondfolio.constraints.base.Constraint.penalty_weight` (e.g. ``cvar``
    with ``penalty``), ``g_0`` its first row (convex), in the row's units.
    """

    name: ClassVar[str] = "penalty"
    sign: ClassVar[int] = -1

    def __init__(self, compiled: Compiled, universe: Universe) -> None:
        self.compiled = compiled
        self.universe = universe
        self.weight = compiled.constraint.penalty_weight()

    @property
    def label(self) -> str:
        return f"penalty:{self.compiled.constraint.label}"

    @property
    def active(self) -> bool:
        return self.weight > 0

    def expression(self, v: Vars) -> cp.Expression:
        assert self.compiled.expr is not None
        return self.weight * self.compiled.expr[0]

    def value(self, x: Point) -> float:
        return self.weight * float(self.compiled.constraint.evaluate(self.compiled.rows, x, self.universe)[0])

    def marginal(self, x: Point) -> np.ndarray:
        out = np.zeros(self.universe.n)
        for i in range(self.universe.n):
            up, down = x.w.copy(), x.w.copy()
            up[i] += STEP
            down[i] -= STEP
            out[i] = (self.value(Point(up, x.cash, x.margin)) - self.value(Point(down, x.cash, x.margin))) / (2 * STEP)
        return out

    def update(self, universe: Universe) -> None:
        self.universe = universe
