"""``carry``: the annual cost of holding hedges."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.universe import Universe
from bondfolio.solver.objective.base import Term

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["Carry"]


class Carry(Term):
    r"""Carry of the hedges (funding, fees), per unit of gross notional a year.

    .. math:: f(w) = \sum_{h} \text{carry}_h \, |w_h|

    over the hedges ``h``; in the program ``|w_h|`` is the hedges' gross-notional variable
    (:attr:`~bondfolio.constraints.variables.Vars.hedge_size`).
    """

    name: ClassVar[str] = "carry"
    sign: ClassVar[int] = -1

    def __init__(self, universe: Universe, hedge_idx: np.ndarray) -> None:
        self.hedge_idx = hedge_idx
        self.universe = universe
        self.param = cp.Parameter(hedge_idx.size, name="hedge_carry", nonneg=True,
                                  value=universe.numeric("carry")[hedge_idx])

    @property
    def active(self) -> bool:
        return bool(np.any(np.asarray(self.param.value) > 0))

    def expression(self, v: Vars) -> cp.Expression:
        return self.param @ v.hedge_size

    def value(self, x: Point) -> float:
        return float(self.universe.numeric("carry") @ np.abs(x.w))

    def marginal(self, x: Point) -> np.ndarray:
        return np.asarray(self.universe.numeric("carry") * np.sign(x.w))

    def update(self, universe: Universe) -> None:
        self.universe = universe
        self.param.value = universe.numeric("carry")[self.hedge_idx]
