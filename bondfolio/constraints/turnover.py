"""``turnover``: limit how much the rebalance trades."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, Linear, ParamSet, Rows
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["Turnover"]


class Turnover(Constraint):
    r"""Two-sided turnover against current holdings at most ``max``.

    .. math:: \sum_i |w_i - w^0_i| \le T

    ``w0`` are current weights (holdings / NAV); idle cash is not counted. Buying 10 % of NAV with the
    proceeds of selling 10 % is a turnover of 0.2. Needs holdings.
    """

    kind: Literal["turnover"] = "turnover"
    max: float = Field(ge=0.0)
    """T, fraction of NAV traded (buys plus sells)."""

    requires_holdings: ClassVar[bool] = True

    def resolve(self, u: Universe) -> Rows:
        return Rows(["portfolio"], -np.inf, self.max)

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        return cp.sum(v.trade_size)

    def linear(self, rows: Rows, v: Vars) -> Linear | None:
        none = np.zeros(0, dtype=np.intp)
        return Linear.of(1, v.n, none, none, trade=(np.zeros(v.n), np.arange(v.n), 1.0))

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return np.array([float(np.sum(np.abs(x.w - u.w0)))])
