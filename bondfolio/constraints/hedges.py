"""Hedge rules: ``net_delta`` per asset, ``hedge_ratio`` against the exposure hedged, ``hedge_budget`` on carry.

Hedges (kind ``hedge``) carry signed notional as their weight: a pay-fixed swap or a short yield
token has negative duration, a short perp ``delta:ETH = -1`` per unit. Net duration with hedges is
the ``duration`` family (it sums every position, hedges included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, model_validator

from bondfolio._lazy import lazy_module
from bondfolio.constraints.bands import _Band, check_interval
from bondfolio.constraints.base import Constraint, ParamSet, Rows
from bondfolio.constraints.select import Selector
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.kinds import Kind
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["HedgeBudget", "HedgeRatio", "NetDelta"]


class NetDelta(_Band):
    r"""Net delta to an asset's price, deposits and hedges together, within a band.

    .. math:: \text{min} \le \sum_{i \notin H,\ \text{asset}_i = A} w_i + \sum_i w_i \, \delta_i^A \le \text{max}

    A deposit in asset ``A`` has delta 1 to its price; ``delta_i^A`` is the opportunity's exposure
    ``delta:A`` per unit of weight (a short perp has -1, a put option its negative delta). Units:
    fraction of NAV whose value moves one for one with ``A``'s price.
    """

    kind: Literal["net_delta"] = "net_delta"
    asset: str = Field(min_length=1)

    @model_validator(mode="after")
    def _band(self) -> NetDelta:
        self._check_interval()
        return self

    def resolve(self, u: Universe) -> Rows:
        key = f"delta:{self.asset}"
        held = np.array([a == self.asset for a in u.attribute("asset")]) & ~u.hedge
        if not held.any() and key not in u.exposure_names:
            raise self.fail(f"no deposit is in '{self.asset}' and no opportunity has a '{key}' exposure: fix the "
                            f"asset (assets: {sorted(set(u.attribute('asset')))})")
        delta = held.astype(float) + (u.numeric(key) if key in u.exposure_names else 0.0)
        lo, hi = self._interval()
        return Rows([self.asset], lo, hi, coefficients={"coef": delta}, unit=f"{self.asset} delta x NAV")


class HedgeRatio(Constraint):
    r"""The part of an exposure that hedges offset, within ``[min, max]`` of the exposure.

    .. math::

        E = \sum_{i \in \text{exposed}} w_i e_i, \qquad
        H = -\sum_{h \in \text{hedges}} w_h e_h, \qquad
        \text{min} \cdot E \le H \le \text{max} \cdot E

    ``e`` is ``attribute`` (``duration`` by default, or an exposure such as ``delta:ETH``). With
    ``min = 0.5, max = 1`` hedges offset between half and all of the book's duration. The rows are
    ``H - min E >= 0`` and ``max E - H >= 0`` (linear, so the ratio need not be defined when
    ``E = 0``); units: ``attribute`` x NAV share.
    """

    kind: Literal["hedge_ratio"] = "hedge_ratio"
    attribute: str = "duration"
    min: float | None = Field(default=None, ge=0.0)
    max: float | None = Field(default=None, ge=0.0)
    hedges: Selector = Field(default_factory=lambda: Selector(kind=(Kind.hedge,)))
    """Which positions hedge (all hedges by default)."""
    exposed: Selector = Field(default_factory=Selector)
    """Whose exposure is hedged (every deposit by default; hedges are never counted here)."""

    @model_validator(mode="after")
    def _band(self) -> HedgeRatio:
        check_interval(self.min, self.max)
        return self

    def resolve(self, u: Universe) -> Rows:
        try:
            e = u.numeric(self.attribute)
        except KeyError:
            raise self.fail(f"attribute '{self.attribute}' is neither a numeric field nor an exposure: use one of "
                            f"{u.numeric_names()}") from None
        hedges = self.hedges.mask(u, self.label) & u.hedge
        exposed = self.exposed.mask(u, self.label) & ~u.hedge
        if not hedges.any():
            raise self.fail("selects no hedge (kind 'hedge'): add hedges to the snapshot or fix 'hedges'")
        e = np.nan_to_num(e)
        exposure = np.where(exposed, e, 0.0)
        offset = np.where(hedges, -e, 0.0)
        labels, lower, coef = [], [], []
        if self.min is not None:
            labels.append(f"offset - {self.min:g} x exposure")
            coef.append(offset - self.min * exposure)
        if self.max is not None:
            labels.append(f"{self.max:g} x exposure - offset")
            coef.append(self.max * exposure - offset)
        lower = [0.0] * len(labels)
        return Rows(labels, lower, np.inf, coefficients={"coef": np.array(coef)}, unit=f"{self.attribute} x NAV share")

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        return p["coef"] @ v.w

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return np.asarray(rows.coefficients["coef"] @ x.w)


class HedgeBudget(Constraint):
    r"""Annual carry of the hedges at most ``max``.

    .. math:: \sum_{h \in \text{hedges}} \text{carry}_h \, |w_h| \le b

    Units: fraction of NAV per year (0.002 = hedges may cost 20 bp of NAV a year).
    """

    kind: Literal["hedge_budget"] = "hedge_budget"
    max: float = Field(ge=0.0)
    select: Selector = Field(default_factory=Selector)
    """Which hedges count (all by default)."""

    def resolve(self, u: Universe) -> Rows:
        mask = self.select.mask(u, self.label)[u.hedge]
        if not mask.any():
            raise self.fail("selects no hedge (kind 'hedge'): add hedges to the snapshot or fix 'select'")
        carry = np.where(mask, u.numeric("carry")[u.hedge], 0.0)
        return Rows(["carry"], -np.inf, self.max, coefficients={"carry": carry}, nonneg=("carry",),
                    unit="fraction of NAV per year")

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        return p["carry"] @ v.hedge_size

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return np.array([float(rows.coefficients["carry"] @ np.abs(x.w[u.hedge]))])
