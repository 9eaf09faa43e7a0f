"""``liquidity_buffer``: enough of NAV can be withdrawn within a horizon."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, Linear, ParamSet, Rows
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.base import Fraction
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["LiquidityBuffer", "withdrawable"]


class LiquidityBuffer(Constraint):
    r"""Share of NAV withdrawable within ``horizon_days`` is at least ``min``.

    .. math::

        c + \sum_{i \in L} \min\left(w_i, \frac{a_i}{\text{NAV}}\right) \ge \text{min},
        \qquad L = \{ i \notin \text{hedges} : \text{withdrawal\_delay\_days}_i \le \text{horizon\_days} \}

    ``a_i`` is the market's ``available_liquidity`` (a position larger than what the pool can pay out
    counts only up to it); positions without a known ``available_liquidity`` count in full. With
    ``cap_by_available_liquidity = false`` every position in ``L`` counts in full. The left side is
    concave, so the constraint is convex. Units: fractions of NAV.
    """

    kind: Literal["liquidity_buffer"] = "liquidity_buffer"
    horizon_days: float = Field(ge=0.0)
    """Withdrawal horizon, days."""
    min: Fraction
    """Smallest withdrawable share of NAV."""
    cap_by_available_liquidity: bool = True
    """Count a position only up to the market's available liquidity."""

    def resolve(self, u: Universe) -> Rows:
        liquid = ~u.hedge & (u.numeric("withdrawal_delay_days") <= self.horizon_days)
        avail = u.numeric("available_liquidity")
        capped = liquid & ~np.isnan(avail) if self.cap_by_available_liquidity else np.zeros(u.n, dtype=bool)
        free = liquid & ~capped
        cap_idx = np.flatnonzero(capped)
        return Rows([f"{self.horizon_days:g}d"], self.min, np.inf,
                    coefficients={"available": avail[cap_idx] / u.nav},
                    structure={"capped": cap_idx, "free": np.flatnonzero(free)})

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        total: cp.Expression = v.cash
        capped, free = rows.structure["capped"], rows.structure["free"]
        # where another constraint already keeps w_i <= a_i / NAV, min(w_i, a_i / NAV) is w_i: exact,
        # and one auxiliary variable and two rows fewer per position
        implied = v.within_available[capped]
        keep = np.flatnonzero(~implied)
        if keep.size:
            total = total + cp.sum(cp.minimum(v.w[capped[keep]], p["available"][keep]))
        free = np.concatenate([free, capped[implied]])
        if free.size:
            total = total + cp.sum(v.w[free])
        return total

    def linear(self, rows: Rows, v: Vars) -> Linear | None:
        capped, free = rows.structure["capped"], rows.structure["free"]
        if not np.all(v.within_available[capped]):  # min(w_i, a_i / NAV) is not linear
            return None
        idx = np.concatenate([free, capped])
        return Linear.of(1, v.n, np.zeros(idx.size), idx, cash=1.0)

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return np.array([withdrawable(x, rows.structure["capped"], rows.structure["free"],
                                      rows.coefficients["available"])])


def withdrawable(x: Point, capped: np.ndarray, free: np.ndarray, available: np.ndarray) -> float:
    """Cash plus positions withdrawable, capped ones only up to ``available`` (fractions of NAV)."""
    return float(x.cash + np.sum(np.minimum(x.w[capped], available)) + np.sum(x.w[free]))
