"""``curve_income`` and ``slippage``: our own trades' effect on the rates we earn and pay.

Both delegate to the program's :class:`~bondfolio.solver.rate_impact.RateImpact`, which owns the
curve markets, their envelopes and the AMM depths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.variables import Point, Vars
from bondfolio.solver.objective.base import Term
from bondfolio.solver.rate_impact import RateImpact

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["CurveIncome", "Slippage"]

#: Step of the one-sided differences of the exact curve income (fraction of NAV).
STEP = 1e-7


class CurveIncome(Term):
    r"""Income of the rate-curve markets on their exact curves.

    .. math:: f(w) = \sum_{i \in C} \frac{x_i \, \text{apy}_i(x_i)}{\text{NAV}}, \qquad x_i = w_i \, \text{NAV}

    In the program: the concave hull of the sampled exact incomes (convex combinations of knots;
    see :mod:`bondfolio.solver.rate_impact`), within ``rate_impact_tolerance_bp``. The numpy value
    and marginal are on the exact curves.
    """

    name: ClassVar[str] = "curve_income"
    sign: ClassVar[int] = 1
    per_assembly: ClassVar[bool] = True

    def __init__(self, impact: RateImpact, n: int) -> None:
        self.impact = impact
        self.n = n
        self._cons: list[cp.Constraint] = []

    @property
    def active(self) -> bool:
        return bool(self.impact.idx.size)

    def expression(self, v: Vars) -> cp.Expression:
        income, self._cons = self.impact.build(v)
        return income

    def constraints(self) -> list[cp.Constraint]:
        return self._cons

    def value(self, x: Point) -> float:
        return float(np.sum(self.impact.exact_income(x.w)))

    def marginal(self, x: Point) -> np.ndarray:
        out = np.zeros(self.n)
        idx = self.impact.idx
        if idx.size:
            up = x.w.copy()
            up[idx] += STEP
            out[idx] = (self.impact.exact_income(up) - self.impact.exact_income(x.w)) / STEP
        return out


class Slippage(Term):
    r"""One-off slippage of trading on an AMM (Pendle PT markets).

    Markets with a ``pendle`` curve pay their exact cost (:mod:`bondfolio.solver.pendle_amm`): in the
    program, the lines through knots within the rate-impact tolerance (never below the exact cost), and
    the trade kept within what the market allows. Markets with the older ``amm`` curve pay the
    depth-scaled quadratic

    .. math:: f(w) = \sum_{a} \frac{\text{NAV}}{2 \, \text{depth}_a} (w_a - w^0_a)^2

    ``depth_a`` the market's depth in base currency; APY units (NAV fractions, scaled as one-off costs are).
    """

    name: ClassVar[str] = "slippage"
    sign: ClassVar[int] = -1
    per_assembly: ClassVar[bool] = True
    one_off: ClassVar[bool] = True

    def __init__(self, impact: RateImpact, n: int, scale: float = 1.0) -> None:
        self.impact = impact
        self.n = n
        self.scale = scale
        self._cons: list[cp.Constraint] = []

    @property
    def active(self) -> bool:
        return bool(self.impact.amm_idx.size or self.impact.pendle_idx.size)

    def expression(self, v: Vars) -> cp.Expression:
        impact = self.impact
        total: cp.Expression = cp.Constant(0.0)
        self._cons = []
        if impact.amm_idx.size:
            self.param = cp.Parameter(impact.amm_idx.size, nonneg=True, name="slippage",
                                      value=impact.amm_coef * self.scale)
            total = total + self.param @ cp.square(v.trade_size[impact.amm_idx])
        if impact.pendle_idx.size:
            cost, self._cons = impact.pendle_rows(v)
            total = total + self.scale * cost
        return total

    def constraints(self) -> list[cp.Constraint]:
        return self._cons

    def value(self, x: Point) -> float:
        impact = self.impact
        return self.scale * float(np.sum(impact.slippage(x.w)) + np.sum(impact.pendle_slippage(x.w)))

    def marginal(self, x: Point) -> np.ndarray:
        out = np.zeros(self.n)
        impact = self.impact
        out[impact.amm_idx] = (2 * self.scale * impact.amm_coef
                               * (x.w[impact.amm_idx] - impact.universe.w0[impact.amm_idx]))
        nav = impact.universe.nav
        for r, (amm, i) in enumerate(zip(impact.pendle, impact.pendle_idx, strict=True)):
            dw = float(x.w[i] - impact.universe.w0[i]) * nav
            out[i] = self.scale * amm.cost_slope(dw, float(impact.pendle_unit[r]))
        return out
