"""``budget``: the portfolio is fully invested, or holds idle cash as an explicit position."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import model_validator

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, Linear, ParamSet, Rows
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.base import Fraction
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["Budget"]


class Budget(Constraint):
    r"""Deposits plus idle cash plus hedge margin add up to NAV; cash within its bounds.

    .. math::

        \sum_{i \notin \text{hedges}} w_i + c + m = 1, \qquad c_{\min} \le c \le c_{\max},
        \qquad m = \sum_{h \in \text{hedges}} \text{margin}_h |w_h|

    ``w``, ``c`` and the margin posted ``m`` are fractions of NAV. Hedges carry signed notional, not
    deposits, and are outside the budget except for their margin (the ``margin`` row exists only when
    some hedge needs margin). Margin is exact for hedges with a ``side``; for the others the program
    can only bound it below, and the independent check rejects an answer that posts more than needed
    (margin would then hide idle cash).
    Without ``allow_cash`` the portfolio is fully invested (``c = 0``). A policy without a
    budget constraint gets ``budget{}`` (fully invested), shown in the decision like any other.
    """

    kind: Literal["budget"] = "budget"
    relaxable: ClassVar[bool] = False
    allow_cash: bool = False
    """Whether idle cash may be held."""
    min_cash: Fraction = 0.0
    """Smallest idle cash, fraction of NAV (needs ``allow_cash``)."""
    max_cash: Fraction = 1.0
    """Largest idle cash, fraction of NAV (with ``allow_cash``)."""

    rows_doc: ClassVar[str] = "invested: deposits + cash = 1; cash: idle cash within bounds"

    @model_validator(mode="after")
    def _bounds(self) -> Budget:
        if self.min_cash > self.max_cash:
            raise ValueError(f"min_cash {self.min_cash} exceeds max_cash {self.max_cash}")
        if self.min_cash > 0 and not self.allow_cash:
            raise ValueError(f"min_cash {self.min_cash} needs allow_cash = true")
        return self

    def resolve(self, u: Universe) -> Rows:
        hi = self.max_cash if self.allow_cash else 0.0
        hedges = np.flatnonzero(u.hedge)
        margin = u.numeric("margin")[hedges]
        structure = {"deposits": np.flatnonzero(~u.hedge), "hedges": hedges}
        if not np.any(margin > 0):
            return Rows(["invested", "cash"], np.array([1.0, self.min_cash]), np.array([1.0, hi]), structure=structure)
        return Rows(["invested", "cash", "margin"], np.array([1.0, self.min_cash, 0.0]), np.array([1.0, hi, 0.0]),
                    coefficients={"margin": margin}, structure=structure, nonneg=("margin",))

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        total = cp.sum(v.w[rows.structure["deposits"]]) + v.cash
        if "margin" not in rows.coefficients:
            return cp.hstack([total, v.cash])
        return cp.hstack([total + v.margin, v.cash, v.margin - p["margin"] @ v.hedge_size])

    def linear(self, rows: Rows, v: Vars) -> Linear | None:
        if "margin" in rows.coefficients:
            return None
        deposits = rows.structure["deposits"]
        return Linear.of(2, v.n, np.zeros(deposits.size), deposits, cash=[1.0, 1.0])

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        total = float(np.sum(x.w[rows.structure["deposits"]])) + x.cash
        if "margin" not in rows.coefficients:
            return np.array([total, x.cash])
        required = float(rows.coefficients["margin"] @ np.abs(x.w[rows.structure["hedges"]]))
        return np.array([total + x.margin, x.cash, x.margin - required])
