"""Position size against the market: ``liquidity_share`` and ``tvl_share``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, ParamSet, Rows
from bondfolio.constraints.select import Selector
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["LiquidityShare", "TvlShare"]


class _MarketShare(Constraint):
    max_share: float = Field(gt=0.0, le=1.0)
    """Largest position as a share of the market quantity (decimal)."""
    select: Selector = Field(default_factory=Selector)
    """Which deposits the rule applies to (all by default; hedges never)."""

    field: ClassVar[str] = ""
    bound_side: ClassVar[str | None] = "upper"
    own_bound: ClassVar[bool] = True

    def resolve(self, u: Universe) -> Rows:
        mask = self.select.mask(u, self.label) & ~u.hedge
        size = u.numeric(self.field)
        missing = [u.ids[i] for i in np.flatnonzero(mask & np.isnan(size))]
        if missing:
            shown = ", ".join(f"'{m}'" for m in missing[:10])
            if len(missing) > 10:
                shown += f" and {len(missing) - 10} more"
            raise self.fail(f"opportunities {shown} have no '{self.field}', which this rule needs: give it in the "
                            "snapshot or exclude them with select.exclude")
        idx = np.flatnonzero(mask)
        upper = self.max_share * size[idx] / u.nav
        return Rows(u.ids_at(idx), np.full(idx.size, -np.inf), upper, structure={"idx": idx})

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        return v.w[rows.structure["idx"]]

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return x.w[rows.structure["idx"]]


class LiquidityShare(_MarketShare):
    r"""A position may be at most a share of the market's available liquidity.

    .. math:: w_i \cdot \text{NAV} \le \alpha \cdot \text{available\_liquidity}_i

    Rows are in fractions of NAV (bound ``alpha * available_liquidity_i / NAV``).
    """

    kind: Literal["liquidity_share"] = "liquidity_share"
    field: ClassVar[str] = "available_liquidity"

    def implies_within_available(self, rows: Rows) -> np.ndarray | None:
        # max_share <= 1 (validated), so w_i <= max_share * a_i / NAV <= a_i / NAV
        return np.asarray(rows.structure["idx"])


class TvlShare(_MarketShare):
    r"""A position may be at most a share of the market's total value locked.

    .. math:: w_i \cdot \text{NAV} \le \beta \cdot \text{tvl}_i

    Rows are in fractions of NAV (bound ``beta * tvl_i / NAV``). ``tvl`` is the snapshot's figure,
    before our own trade.
    """

    kind: Literal["tvl_share"] = "tvl_share"
    field: ClassVar[str] = "tvl"
