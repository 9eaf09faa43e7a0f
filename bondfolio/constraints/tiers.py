"""``tier_share``: how much of NAV each book (core, yield enhancement, hedges) may take."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, Linear, ParamSet, Rows
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.kinds import Tier
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["TierShare"]


class TierShare(Constraint):
    r"""The share of NAV in one tier, within ``[min, max]``.

    .. math::

        \text{core, yield:}\quad \text{min} \le \sum_{i \in T} w_i \le \text{max} \qquad
        \text{hedge:}\quad \sum_{h} m_h |w_h| \le \text{max}

    For the ``hedge`` tier the measure is gross notional (``m_h = 1``, ``measure = "notional"``) or
    the margin it uses (``m_h = margin_h``, ``measure = "margin"``); both are convex, so hedges take
    only a ``max`` (to force hedging, use ``hedge_ratio`` or a ``duration``/``net_delta`` band).
    Units: fraction of NAV.
    """

    kind: Literal["tier_share"] = "tier_share"
    tier: Tier
    min: float | None = Field(default=None, ge=0.0)
    max: float | None = Field(default=None, ge=0.0)
    measure: Literal["notional", "margin"] = "notional"
    """Hedge tier only: what counts against the share."""

    @model_validator(mode="after")
    def _form(self) -> TierShare:
        if self.min is None and self.max is None:
            raise ValueError("give 'min' and/or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} exceeds max {self.max}")
        if self.tier is Tier.hedge and self.min is not None:
            raise ValueError("a minimum gross hedge notional is not convex: use hedge_ratio or a duration/net_delta "
                             "band to require hedging")
        return self

    def resolve(self, u: Universe) -> Rows:
        lo = -np.inf if self.min is None else self.min
        hi = np.inf if self.max is None else self.max
        members = np.array([t == self.tier.value for t in u.attribute("tier")])
        if self.tier is Tier.hedge:
            scale = np.ones(int(u.hedge.sum())) if self.measure == "notional" else u.numeric("margin")[u.hedge]
            return Rows([f"{self.tier.value} {self.measure}"], lo, hi, coefficients={"scale": scale},
                        nonneg=("scale",))
        return Rows([self.tier.value], lo, hi, structure={"idx": np.flatnonzero(members)})

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        if self.tier is Tier.hedge:
            return p["scale"] @ v.hedge_size
        return cp.sum(v.w[rows.structure["idx"]])

    def linear(self, rows: Rows, v: Vars) -> Linear | None:
        if self.tier is Tier.hedge:
            return None
        idx = rows.structure["idx"]
        return Linear.of(1, v.n, np.zeros(idx.size), idx)

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        if self.tier is Tier.hedge:
            return np.array([float(rows.coefficients["scale"] @ np.abs(x.w[u.hedge]))])
        return np.array([float(np.sum(x.w[rows.structure["idx"]]))])
