"""``fixed_cost``: a fixed cost per traded position (gas), and trades that are zero or at least ``min_trade``.

Only policies with an ``[execution]`` table get it (and only when it costs something or sets a
``min_trade``). Each position ``i`` has a buy cost ``cb_i`` and a sell cost ``cs_i`` in base currency:
the gas of its deposit or withdrawal leg (:mod:`bondfolio.inputs.gas`) at the snapshot's base fee and
the chain's native price, or ``[execution] gas_per_leg`` for a snapshot without chain data. Which
positions trade is combinatorial; the program holds the convex relaxation::

    w_i - w0_i = b_i - s_i,   m zb_i <= b_i <= Ub_i zb_i,   m zs_i <= s_i <= Us_i zs_i,
    zb_i + zs_i <= 1,   lo <= z <= hi,   cost = sum_i cb_i zb_i + cs_i zs_i   (fractions of NAV)

with ``m`` = ``min_trade / NAV``, ``Ub_i`` the room to buy (the position's upper bound, at most 1, less
``w0_i``) and ``Us_i = w0_i`` the most it can sell: the tightest big-M, so the relaxation's bound is
strong. With ``z`` in {0, 1} it is exact: a position
trades (one way) or not, and a trade is at least ``m``. :mod:`bondfolio.solver.mixed` branches on ``z``
(its bounds ``lo``/``hi`` are Parameters, so every node re-solves without recompiling).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import RowResult
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.gas import GAS, leg_cost
from bondfolio.inputs.policy import Policy
from bondfolio.inputs.universe import Universe
from bondfolio.solver.objective.base import Term

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["FixedCost", "leg_costs"]

#: A relaxation variable within this of 0 or 1 counts as integral.
INTEGRAL = 1e-6
#: A move larger than this (fraction of NAV, the independent check's default tolerance) is a trade;
#: smaller ones are solver round-off and pay no fixed cost.
TRADED = 1e-7


def leg_costs(u: Universe, policy: Policy) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per opportunity, the fixed cost of buying and of selling (base currency), and notes on where
    they come from."""
    settings = policy.execution
    buy, sell = np.zeros(u.n), np.zeros(u.n)
    notes: list[str] = []
    if settings is None:
        return buy, sell, notes
    unpriced: list[str] = []
    unmeasured: list[str] = []
    for i, o in enumerate(u.snapshot.opportunities):
        if u.hedge[i]:
            continue
        block = u.snapshot.as_of.chains.get(o.chain)
        fee = block.base_fee_wei if block is not None else None
        native = (block.native_price if block is not None else None) or settings.native_price.get(o.chain)
        ex = o.execution
        priced = ex is not None and fee is not None and native is not None
        if ex is not None and fee is not None and native is not None and (ex.protocol, "deposit") in GAS:
            buy[i] = leg_cost(ex.protocol, "deposit", fee, native)
            sell[i] = leg_cost(ex.protocol, "withdraw", fee, native)
        elif settings.gas_per_leg is not None:
            buy[i] = sell[i] = settings.gas_per_leg
        elif priced:
            unmeasured.append(o.id)
        else:
            unpriced.append(o.id)
    if unpriced:
        notes.append(f"no gas price for {len(unpriced)} positions ({', '.join(unpriced[:3])}"
                     f"{', ...' if len(unpriced) > 3 else ''}): the snapshot has no base fee, native price or "
                     "execution data for them and the policy no [execution] gas_per_leg; their legs cost 0 in the "
                     "objective")
    if unmeasured:
        notes.append(f"no measured gas for the protocol of {', '.join(unmeasured[:3])}"
                     f"{', ...' if len(unmeasured) > 3 else ''} (plans do not encode its legs): they cost 0 in the "
                     "objective unless [execution] gas_per_leg is set")
    return buy, sell, notes


class FixedCost(Term):
    r"""Fixed cost of each traded position, and the minimum trade (see the module docstring).

    .. math:: f(w) = \sum_i \frac{cb_i [w_i > w^0_i] + cs_i [w_i < w^0_i]}{\text{NAV}}

    One-off, in fractions of NAV, charged like the trading cost (against one year of yield, or the
    gate's horizon).
    """

    name: ClassVar[str] = "fixed_cost"
    sign: ClassVar[int] = -1
    one_off: ClassVar[bool] = True

    def __init__(self, universe: Universe, policy: Policy, scale: float = 1.0, upper: np.ndarray | None = None
                 ) -> None:
        self.universe = universe
        self.policy = policy
        self.scale = scale
        self.upper = np.ones(universe.n) if upper is None else np.minimum(np.asarray(upper, dtype=float), 1.0)
        """Each weight's simple upper bound (the program's folded bounds, at most 1): buys cannot exceed it."""
        settings = policy.execution
        self.min_trade = 0.0 if settings is None else settings.min_trade
        buy, sell, self.notes = leg_costs(universe, policy)
        nav = universe.nav
        self.buy, self.sell = buy / nav, sell / nav
        self.scope = np.flatnonzero(~universe.hedge)
        k = self.scope.size
        self.m = self.min_trade / nav
        self.lo_b = cp.Parameter(k, name="fixed_cost:buy_floor", value=np.zeros(k))
        self.hi_b = cp.Parameter(k, name="fixed_cost:buy_cap", value=np.ones(k))
        self.lo_s = cp.Parameter(k, name="fixed_cost:sell_floor", value=np.zeros(k))
        self.hi_s = cp.Parameter(k, name="fixed_cost:sell_cap", value=np.ones(k))
        idx = self.scope
        self.cost_b = cp.Parameter(k, nonneg=True, name="fixed_cost:buy_cost", value=self.scale * self.buy[idx])
        self.cost_s = cp.Parameter(k, nonneg=True, name="fixed_cost:sell_cost", value=self.scale * self.sell[idx])
        cap_b, cap_s = self._caps()
        self.cap_b = cp.Parameter(k, nonneg=True, name="fixed_cost:buy_room", value=cap_b)
        self.cap_s = cp.Parameter(k, nonneg=True, name="fixed_cost:sell_room", value=cap_s)
        self.zb: cp.Variable | None = None
        self.zs: cp.Variable | None = None
        self._cons: list[cp.Constraint] = []
        self.enforce = True
        """Whether :meth:`check` holds the answer to the integral rules (off inside branch and bound)."""

    @property
    def active(self) -> bool:
        return bool(self.scope.size) and (self.m > 0 or bool(np.any(self.buy > 0) or np.any(self.sell > 0)))

    def expression(self, v: Vars) -> cp.Expression:
        idx, k = self.scope, self.scope.size
        b = cp.Variable(k, nonneg=True, name="fixed_cost:buy")
        s = cp.Variable(k, nonneg=True, name="fixed_cost:sell")
        self.zb = zb = cp.Variable(k, name="fixed_cost:buy_flag")
        self.zs = zs = cp.Variable(k, name="fixed_cost:sell_flag")
        self._cons = [v.w[idx] - v.w0[idx] == b - s, b <= cp.multiply(self.cap_b, zb), s <= cp.multiply(self.cap_s, zs),
                      b >= self.m * zb, s >= self.m * zs, zb + zs <= 1,
                      zb >= self.lo_b, zb <= self.hi_b, zs >= self.lo_s, zs <= self.hi_s]
        return self.cost_b @ zb + self.cost_s @ zs

    def constraints(self) -> list[cp.Constraint]:
        return self._cons

    def _caps(self) -> tuple[np.ndarray, np.ndarray]:
        """The most a position can be bought (its upper bound less its weight) or sold (its weight)."""
        w0 = np.asarray(self.universe.w0, dtype=float)[self.scope]
        return np.maximum(self.upper[self.scope] - w0, 0.0), np.maximum(w0, 0.0)

    def update(self, universe: Universe) -> None:
        self.universe = universe
        self.cap_b.value, self.cap_s.value = self._caps()
        buy, sell, self.notes = leg_costs(universe, self.policy)
        self.buy, self.sell = buy / universe.nav, sell / universe.nav
        self.cost_b.value = self.scale * self.buy[self.scope]
        self.cost_s.value = self.scale * self.sell[self.scope]

    def flags(self) -> tuple[np.ndarray, np.ndarray]:
        """The relaxation's ``zb``, ``zs`` at the last solve."""
        assert self.zb is not None and self.zs is not None
        return np.asarray(self.zb.value, dtype=float), np.asarray(self.zs.value, dtype=float)

    def traded(self, x: Point, tol: float) -> tuple[np.ndarray, np.ndarray]:
        """Masks over the scope: bought, sold (beyond ``tol`` of NAV)."""
        dw = x.w[self.scope] - np.asarray(self.universe.w0)[self.scope]
        return dw > tol, dw < -tol

    def value(self, x: Point) -> float:
        bought, sold = self.traded(x, TRADED)
        idx = self.scope
        return self.scale * float(self.buy[idx] @ bought + self.sell[idx] @ sold)

    def marginal(self, x: Point) -> np.ndarray:
        return np.zeros(self.universe.n)  # piecewise constant

    def check(self, x: Point, tol: float) -> list[RowResult]:
        """Each position's trade is zero or at least ``min_trade`` (rows in fractions of NAV)."""
        if not self.enforce or self.m <= 0:
            return []
        out = []
        dw = np.abs(x.w[self.scope] - np.asarray(self.universe.w0)[self.scope])
        for j, i in enumerate(self.scope):
            d = float(dw[j])
            violation = 0.0 if d <= tol or d >= self.m - tol else min(d, self.m - d)
            out.append(RowResult("min_trade", "min_trade", self.universe.ids[i], d, 0.0, np.inf, -violation,
                                 violation, "fraction of NAV"))
        return out
