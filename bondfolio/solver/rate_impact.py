"""Rate impact inside the program: income of rate-curve markets as concave envelopes, exact afterwards.

For each opportunity with a ``rate_curve`` (see :mod:`bondfolio.solver.curves`) the objective's
``apy_i * w_i`` becomes a variable ``t_i`` (income / NAV) with ``t_i <= a_ik / NAV + b_ik * w_i`` for
every line of the market's envelope. The tolerance is split evenly: with ``m`` curve markets each
envelope is within ``tol_bp / 1e4 * NAV / m`` of its income where income is concave, so the model
of portfolio APY is within ``tol_bp`` basis points there (default 0.01 bp).

Where an income is not concave (a pool above its kink), the envelope bridges the dip and may overstate
it. After a solve, a market whose holding lies inside a bridge is *repaired*: the program is solved
again with that holding restricted to the left of the bridge and to the right of it, and the side
with the better exact objective is kept (largest gap first, one market at a time). Every reported
number (APY before and after, portfolio APY, objective) is evaluated on the exact curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from bondfolio.constraints.base import Point, Vars
from bondfolio.inputs.universe import Universe
from bondfolio.solver.curves import Envelope, MarketCurve, curve_for, envelope

__all__ = ["RateImpact"]


@dataclass
class RateImpact:
    """The curve markets of one program, their envelopes and the cvxpy pieces that model them."""

    universe: Universe
    tol_bp: float
    idx: np.ndarray = field(init=False)
    curves: list[MarketCurve] = field(init=False)
    envelopes: list[Envelope] = field(init=False)

    def __post_init__(self) -> None:
        u = self.universe
        held = np.asarray(u.w0) * u.nav
        idx, curves = [], []
        for i, opp in enumerate(u.snapshot.opportunities):
            curve = curve_for(opp, float(max(held[i], 0.0)))
            if curve is not None:
                idx.append(i)
                curves.append(curve)
        self.idx = np.array(idx, dtype=int)
        self.curves = curves
        tol = self.tol_bp / 1e4 * u.nav / max(len(curves), 1)
        self.envelopes = [envelope(c, u.nav, tol) for c in curves]

    @property
    def active(self) -> bool:
        return self.idx.size > 0

    def build(self, v: Vars) -> tuple[cp.Expression, list[cp.Constraint]]:
        """The income term (sum of ``t``, in NAV units) and its envelope constraints; also branch bounds
        (``lo <= w <= hi`` per curve market, inactive by default) for the repair step."""
        m = self.idx.size
        k = max(e.a.size for e in self.envelopes)
        a = np.zeros((m, k))
        b = np.zeros((m, k))
        for r, e in enumerate(self.envelopes):
            a[r, :] = e.a[-1] / self.universe.nav
            b[r, :] = e.b[-1]
            a[r, : e.a.size] = e.a / self.universe.nav
            b[r, : e.b.size] = e.b
        self.t = cp.Variable(m, name="curve_income")
        self.a = cp.Parameter((m, k), name="envelope_intercepts", value=a)
        self.b = cp.Parameter((m, k), name="envelope_slopes", value=b)
        self.lo = cp.Parameter(m, name="branch_floor", value=np.zeros(m))
        self.hi = cp.Parameter(m, name="branch_cap", value=np.full(m, 2.0))
        w = v.w[self.idx]
        ones = np.ones((1, k))
        wide_w = cp.reshape(w, (m, 1), order="C") @ ones
        wide_t = cp.reshape(self.t, (m, 1), order="C") @ ones
        cons = [wide_t <= self.a + cp.multiply(self.b, wide_w), w >= self.lo, w <= self.hi]
        return cp.sum(self.t), cons

    # ------------------------------------------------------------------ exact evaluation
    def exact_income(self, w: np.ndarray) -> np.ndarray:
        """Exact annual income / NAV of each curve market at weights ``w``."""
        nav = self.universe.nav
        return np.array([float(c.income(max(float(w[i]), 0.0) * nav)) / nav for c, i in zip(self.curves, self.idx,
                                                                                            strict=True)])

    def model_income(self, w: np.ndarray) -> np.ndarray:
        nav = self.universe.nav
        return np.array([e.value(max(float(w[i]), 0.0) * nav) / nav for e, i in zip(self.envelopes, self.idx,
                                                                                    strict=True)])

    def on_bridge(self, w: np.ndarray) -> list[tuple[int, float, float, float]]:
        """Curve markets whose holding lies inside a bridge: (row, left end, right end, gap/NAV), largest gap first."""
        nav = self.universe.nav
        out = []
        exact, model = self.exact_income(w), self.model_income(w)
        for r, (e, i) in enumerate(zip(self.envelopes, self.idx, strict=True)):
            x = float(w[i]) * nav
            for lo, hi in e.bridges:
                if lo * (1 + 1e-9) < x < hi * (1 - 1e-9):
                    out.append((r, lo / nav, hi / nav, float(model[r] - exact[r])))
        return sorted(out, key=lambda item: -item[3])

    def report(self, point: Point, repairs: list[dict[str, Any]]) -> dict[str, Any]:
        """Per market APY before (at current holdings) and after, and the envelope's accuracy."""
        u = self.universe
        nav = u.nav
        markets = []
        for r, (c, e, i) in enumerate(zip(self.curves, self.envelopes, self.idx, strict=True)):
            x = max(float(point.w[i]), 0.0) * nav
            markets.append({
                "id": u.ids[i], "model": c.model, "apy_before": float(c.apy(c.held)), "apy_after": float(c.apy(x)),
                "snapshot_apy": float(u.apy[i]), "amount": x, "lines": int(e.a.size),
                "envelope_bound": e.bound, "bridges": [list(b) for b in e.bridges],
                "model_income": e.value(x), "exact_income": float(c.income(x)),
            })
            del r
        exact = float(np.sum(self.exact_income(point.w)))
        model = float(np.sum(self.model_income(point.w)))
        return {"markets": markets, "tolerance_bp": self.tol_bp, "exact_income_share": exact,
                "model_income_share": model, "model_minus_exact_bp": (model - exact) * 1e4, "repairs": repairs}
