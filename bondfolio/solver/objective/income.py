"""``yield``: the snapshot APY of every position whose income is not modelled on a rate curve."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bondfolio.inputs.universe import Universe
from bondfolio.solver.objective.base import Term

__all__ = ["Yield"]


class Yield(Term):
    r"""Linear yield of the positions without a rate curve.

    .. math:: f(w) = \sum_{i \notin C} \text{apy}_i \, w_i

    ``apy`` decimal, ``w`` fractions of NAV; ``C`` the rate-curve markets, whose income the
    ``curve_income`` term gives on the exact curve instead.
    """

    name: ClassVar[str] = "yield"
    sign: ClassVar[int] = 1
    linear: ClassVar[bool] = True

    def __init__(self, universe: Universe, curve_idx: np.ndarray) -> None:
        self.curve_idx = np.asarray(curve_idx, dtype=int)
        self.update(universe)

    def coefficients(self) -> np.ndarray:
        return self._apy

    def update(self, universe: Universe) -> None:
        apy = np.array(universe.apy, dtype=float)
        apy[self.curve_idx] = 0.0
        self._apy = apy
