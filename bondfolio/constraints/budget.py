"""``budget``: the portfolio is fully invested, or holds idle cash as an explicit position."""

from __future__ import annotations

from typing import ClassVar, Literal

import cvxpy as cp
import numpy as np
from pydantic import model_validator

from bondfolio.constraints.base import Constraint, ParamSet, Point, Rows, Vars
from bondfolio.inputs.base import Fraction
from bondfolio.inputs.universe import Universe

__all__ = ["Budget"]


class Budget(Constraint):
    r"""Deposits plus idle cash add up to NAV; cash within its bounds.

    .. math::

        \sum_{i \notin \text{hedges}} w_i + c = 1, \qquad c_{\min} \le c \le c_{\max}

    ``w`` and ``c`` are fractions of NAV. Hedges carry signed notional, not deposits, and are outside
    the budget. Without ``allow_cash`` the portfolio is fully invested (``c = 0``). A policy without a
    budget constraint gets ``budget{}`` (fully invested), shown in the decision like any other.
    """

    kind: Literal["budget"] = "budget"
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
        return Rows(["invested", "cash"], np.array([1.0, self.min_cash]), np.array([1.0, hi]),
                    structure={"deposits": np.flatnonzero(~u.hedge)})

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        total = cp.sum(v.w[rows.structure["deposits"]]) + v.cash
        return cp.hstack([total, v.cash])

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return np.array([float(np.sum(x.w[rows.structure["deposits"]])) + x.cash, x.cash])
