"""``failure_loss``: the expected annual loss from protocol and dependency failures."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bondfolio.constraints.variables import Point
from bondfolio.inputs.universe import Universe
from bondfolio.solver.objective.base import Term

__all__ = ["FailureLoss"]


class FailureLoss(Term):
    r"""Expected annual failure loss, weighted by the policy's failure aversion.

    .. math:: f(w) = \phi \sum_i \text{el}_i \, w_i

    ``el_i`` the expected annual loss rate of position ``i`` under the snapshot's failure model
    (:mod:`bondfolio.inputs.failure`), ``phi`` = ``objective.failure_aversion``; APY units.
    """

    name: ClassVar[str] = "failure_loss"
    sign: ClassVar[int] = -1
    linear: ClassVar[bool] = True

    def __init__(self, universe: Universe, failure_aversion: float) -> None:
        self.failure_aversion = failure_aversion
        self.update(universe)

    @property
    def loss_rate(self) -> np.ndarray:
        """Expected annual loss rate per unit of each position (unweighted)."""
        return self._el

    def coefficients(self) -> np.ndarray:
        return self._coef

    def value(self, x: Point) -> float:
        return self.failure_aversion * float(self._el @ x.w)

    def update(self, universe: Universe) -> None:
        self._el = np.asarray(universe.expected_loss_rate)
        self._coef = self.failure_aversion * self._el
