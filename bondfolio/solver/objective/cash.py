"""``cash``: the yield of idle cash."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.variables import Point, Vars
from bondfolio.solver.objective.base import Term

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["Cash"]


class Cash(Term):
    r"""Income of idle cash.

    .. math:: f(c) = \text{cash\_apy} \cdot c

    ``c`` idle cash as a fraction of NAV, ``cash_apy`` decimal.
    """

    name: ClassVar[str] = "cash"
    sign: ClassVar[int] = 1

    def __init__(self, n: int, cash_apy: float) -> None:
        self.n = n
        self.param = cp.Parameter(name="cash_apy", value=cash_apy)

    def expression(self, v: Vars) -> cp.Expression:
        return self.param * v.cash

    def value(self, x: Point) -> float:
        return float(self.param.value) * x.cash  # type: ignore[arg-type]

    def marginal(self, x: Point) -> np.ndarray:
        return np.zeros(self.n)
