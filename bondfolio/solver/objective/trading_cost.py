"""``trading_cost``: the one-off proportional cost of trading."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.variables import Point, Vars
from bondfolio.errors import InputError
from bondfolio.inputs.policy import Policy
from bondfolio.inputs.universe import Universe
from bondfolio.solver.objective.base import Term

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["TradingCost", "trading_costs"]


def trading_costs(u: Universe, policy: Policy) -> np.ndarray:
    """One-off trading cost per opportunity, decimal of the amount traded (bp / 1e4)."""
    obj = policy.objective
    unknown = [k for k in obj.trading_cost_bp_by_id if u.index_of(k) is None]
    if unknown:
        raise InputError(f"policy '{policy.name}': objective.trading_cost_bp_by_id names {unknown}, which the "
                         "snapshot lacks: fix the ids or drop them")
    costs = np.full(u.n, obj.trading_cost_bp / 1e4)
    for key, bp in obj.trading_cost_bp_by_id.items():
        costs[u.index_of(key)] = bp / 1e4
    return costs


class TradingCost(Term):
    r"""Proportional cost of moving from the current weights.

    .. math:: f(w) = \sum_i \text{cost}_i \, |w_i - w^0_i|

    ``cost_i`` = ``trading_cost_bp / 1e4`` (or its per-id override), a decimal of the amount traded,
    charged once against one year of yield. In the program ``|w - w0|`` is the shared trade-size
    variable (:attr:`~bondfolio.constraints.variables.Vars.trade_size`).
    """

    name: ClassVar[str] = "trading_cost"
    sign: ClassVar[int] = -1
    one_off: ClassVar[bool] = True

    def __init__(self, universe: Universe, policy: Policy, scale: float = 1.0) -> None:
        self.universe = universe
        self.policy = policy
        self.scale = scale
        self.costs = trading_costs(universe, policy)
        self.param = cp.Parameter(universe.n, name="trading_cost", nonneg=True, value=self.costs * scale)

    @property
    def active(self) -> bool:
        return bool(np.any(self.costs > 0))

    def expression(self, v: Vars) -> cp.Expression:
        return self.param @ v.trade_size

    def value(self, x: Point) -> float:
        return self.scale * float(self.costs @ np.abs(x.w - self.universe.w0))

    def marginal(self, x: Point) -> np.ndarray:
        return np.asarray(self.scale * self.costs * np.sign(x.w - self.universe.w0))

    def update(self, universe: Universe) -> None:
        self.universe = universe
        self.costs = trading_costs(universe, self.policy)
        self.param.value = self.costs * self.scale
