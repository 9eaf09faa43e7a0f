"""Risk limits: ``risk_budget`` (smart-contract risk scores) and ``max_volatility``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

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

__all__ = ["MaxVolatility", "RiskBudget"]


class RiskBudget(Constraint):
    r"""Weighted smart-contract risk score at most ``max``.

    .. math:: \sum_i \text{risk\_score}_i \, |w_i| \le R

    Scores are in [0, 1], weights fractions of NAV; hedges count by the size of their notional.
    """

    kind: Literal["risk_budget"] = "risk_budget"
    max: float = Field(ge=0.0)
    """R: the largest NAV-weighted risk score."""

    def resolve(self, u: Universe) -> Rows:
        score = u.numeric("risk_score")
        long_idx, hedge_idx = np.flatnonzero(~u.hedge), np.flatnonzero(u.hedge)
        return Rows(["portfolio"], -np.inf, self.max, unit="score x NAV share",
                    coefficients={"long": score[long_idx], "hedge": score[hedge_idx]},
                    structure={"long": long_idx, "hedge": hedge_idx}, nonneg=("long", "hedge"))

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        total: cp.Expression = p["long"] @ v.w[rows.structure["long"]]
        if rows.structure["hedge"].size:
            total = total + p["hedge"] @ cp.abs(v.w[rows.structure["hedge"]])
        return total

    def linear(self, rows: Rows, v: Vars) -> Linear | None:
        if rows.structure["hedge"].size:  # |w_h| is not linear
            return None
        idx = rows.structure["long"]
        return Linear.of(1, v.n, np.zeros(idx.size), idx, rows.coefficients["long"])

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        value = rows.coefficients["long"] @ x.w[rows.structure["long"]]
        value += rows.coefficients["hedge"] @ np.abs(x.w[rows.structure["hedge"]])
        return np.array([float(value)])


class MaxVolatility(Constraint):
    r"""Annual volatility of the portfolio at most ``max``.

    .. math:: \sqrt{w^\top \Sigma w} \le \sigma_{\max}

    In factor form ``w' Sigma w = |R' w|^2 + |s * w|^2``, so this is one second-order cone. With a
    dense covariance ``R`` is its n x n square root, much slower to solve at scale: prefer the factor
    form for large books. Units: annual volatility as a decimal (0.01 = 1 %).
    """

    kind: Literal["max_volatility"] = "max_volatility"
    max: float = Field(ge=0.0)
    """sigma_max, annual volatility (decimal)."""

    def resolve(self, u: Universe) -> Rows:
        return Rows(["portfolio"], -np.inf, self.max, unit="annual volatility")

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        return v.volatility()

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return np.array([np.sqrt(max(u.variance(x.w), 0.0))])
