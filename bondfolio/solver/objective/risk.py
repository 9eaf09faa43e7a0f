"""``risk``: the mean-variance penalty."""

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

__all__ = ["Risk"]


class Risk(Term):
    r"""Risk penalty of mean-variance.

    .. math:: f(w) = \frac{\gamma}{2} \, w^\top \Sigma w

    ``gamma`` = ``objective.risk_aversion`` (a Parameter, so a sweep over it re-solves without
    recompiling), ``Sigma`` the annual covariance of the snapshot's risk model, dense or factor form
    (never expanded to n x n). DPP form: the factor (or dense) part is ``gamma/2`` times a
    parameter-free expression, and the specific part is ``((gamma/2) d)' (w * w)`` with the product
    kept in one Parameter, refreshed whenever ``gamma`` or the universe changes.
    """

    name: ClassVar[str] = "risk"
    sign: ClassVar[int] = -1

    def __init__(self, universe: Universe, risk_aversion: float, build: bool) -> None:
        self.universe = universe
        self.gamma = cp.Parameter(name="risk_aversion", nonneg=True, value=risk_aversion)
        self.built = build
        self._scaled_specific: cp.Parameter | None = None

    @property
    def active(self) -> bool:
        return self.built

    @property
    def risk_aversion(self) -> float:
        return float(np.asarray(self.gamma.value))

    def expression(self, v: Vars) -> cp.Expression:
        gamma = self.gamma
        if self.universe.snapshot.risk.covariance is not None:
            return (gamma / 2) * v.variance()
        factor, specific = v.risk_parts()
        total: cp.Expression = cp.Constant(0.0)
        if factor is not None:
            total = total + (gamma / 2) * cp.sum_squares(factor)
        if specific is not None:
            self._scaled_specific = cp.Parameter(v.n, name="scaled_specific_variance", nonneg=True,
                                                 value=self._scaled_specific_value())
            total = total + self._scaled_specific @ cp.square(v.w)
        return total

    @property
    def specific_weights(self) -> np.ndarray | None:
        """The weights of ``w_i^2`` in the compiled specific part, ``(gamma / 2) s_i^2`` (``None`` when the
        program has no specific part); the factor part is ``(gamma / 2) |y|^2``."""
        return None if self._scaled_specific is None else np.asarray(self._scaled_specific.value)

    def _scaled_specific_value(self) -> np.ndarray:
        return self.risk_aversion / 2 * self.universe.risk_factor[1] ** 2

    def set_risk_aversion(self, gamma: float) -> None:
        self.gamma.value = gamma
        if self._scaled_specific is not None:
            self._scaled_specific.value = self._scaled_specific_value()

    def value(self, x: Point) -> float:
        return self.risk_aversion / 2 * self.universe.variance(x.w) if self.built else 0.0

    def marginal(self, x: Point) -> np.ndarray:
        return self.risk_aversion * self.universe.marginal_risk(x.w) if self.built else np.zeros(self.universe.n)

    def update(self, universe: Universe) -> None:
        self.universe = universe
        if self._scaled_specific is not None:
            self._scaled_specific.value = self._scaled_specific_value()
