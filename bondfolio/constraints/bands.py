"""Linear bands on portfolio-level numbers: ``duration`` and ``exposure``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, Linear, ParamSet, Rows
from bondfolio.constraints.select import Selector
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["Duration", "Exposure"]


def check_interval(lo: float | None, hi: float | None) -> None:
    """Raise ``ValueError`` unless ``[lo, hi]`` (``None`` for no bound) is a non-empty band with a bound."""
    low = -np.inf if lo is None else lo
    high = np.inf if hi is None else hi
    if low > high:
        raise ValueError(f"the band is empty: min {lo} exceeds max {hi}")
    if not (np.isfinite(low) or np.isfinite(high)):
        raise ValueError("give at least one bound")


class _Band(Constraint):
    min: float | None = None
    max: float | None = None

    def _interval(self) -> tuple[float, float]:
        lo = -np.inf if self.min is None else self.min
        hi = np.inf if self.max is None else self.max
        return lo, hi

    def _check_interval(self) -> None:
        check_interval(*self._interval())

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        return p["coef"] @ v.w

    def linear(self, rows: Rows, v: Vars) -> Linear | None:
        coef = rows.coefficients["coef"]
        idx = np.flatnonzero(coef)
        return Linear.of(1, v.n, np.zeros(idx.size), idx, coef[idx])

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return np.array([float(rows.coefficients["coef"] @ x.w)])


class Duration(_Band):
    r"""Portfolio duration within a band, hedges included.

    .. math:: \text{target} - \text{tolerance} \le \sum_i w_i D_i \le \text{target} + \text{tolerance}

    ``D_i`` in years (negative for hedges that pay fixed); idle cash has duration 0. Give ``target`` and
    ``tolerance``, or ``min`` and/or ``max``.
    """

    kind: Literal["duration"] = "duration"
    target: float | None = Field(default=None, ge=-100.0, le=100.0)
    """Target duration, years."""
    tolerance: float | None = Field(default=None, ge=0.0)
    """Half-width of the band around ``target``, years."""

    @model_validator(mode="after")
    def _form(self) -> Duration:
        if (self.target is None) != (self.tolerance is None):
            raise ValueError("give both 'target' and 'tolerance', or neither (and 'min'/'max')")
        if self.target is not None and (self.min is not None or self.max is not None):
            raise ValueError("give 'target' and 'tolerance', or 'min'/'max', not both")
        self._check_interval()
        return self

    def _interval(self) -> tuple[float, float]:
        if self.target is not None and self.tolerance is not None:
            return self.target - self.tolerance, self.target + self.tolerance
        return super()._interval()

    def resolve(self, u: Universe) -> Rows:
        lo, hi = self._interval()
        return Rows(["portfolio"], lo, hi, coefficients={"coef": u.numeric("duration")}, unit="years")


class Exposure(_Band):
    r"""Portfolio exposure to a numeric attribute within a band.

    .. math:: \text{min} \le \sum_{i \in \text{select}} w_i e_i \le \text{max}

    ``e`` is an ``exposures`` key of the opportunities (e.g. ``delta:ETH``; missing means 0) or a
    numeric field (``apy``, ``duration``, ``risk_score``, ``price``, ``withdrawal_delay_days``, ``tvl``,
    ``available_liquidity``). The value is in the attribute's unit per unit of NAV.
    """

    kind: Literal["exposure"] = "exposure"
    attribute: str = Field(min_length=1)
    """Which number ``e_i`` is."""
    select: Selector = Field(default_factory=Selector)
    """Which positions contribute (all by default)."""

    @model_validator(mode="after")
    def _form(self) -> Exposure:
        self._check_interval()
        return self

    def resolve(self, u: Universe) -> Rows:
        try:
            e = u.numeric(self.attribute)
        except KeyError:
            raise self.fail(f"attribute '{self.attribute}' is neither a numeric field nor an exposure of any "
                            f"opportunity: use one of {u.numeric_names()}") from None
        mask = self.select.mask(u, self.label)
        missing = [u.ids[i] for i in np.flatnonzero(mask & np.isnan(e))]
        if missing:
            raise self.fail(f"opportunities {missing[:10]} have no '{self.attribute}': give it or exclude them")
        coef = np.where(mask, np.nan_to_num(e), 0.0)
        lo, hi = self._interval()
        return Rows([self.attribute], lo, hi, coefficients={"coef": coef}, unit=f"{self.attribute} x NAV share")
