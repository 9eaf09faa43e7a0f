"""Pendle V2's AMM as it trades, and the convex one-off cost of trading on it as lines for the program.

The market (PendleMarketV7, MarketMathCore) prices ``d`` PT (``d > 0`` bought, ``d < 0`` sold) at the
exchange rate (asset per PT)

.. math::

    E(d) = \\frac{1}{s} \\ln \\frac{p}{1 - p} + a, \\qquad p = \\frac{P - d}{P + A}, \\qquad
    s = \\text{scalarRoot} \\cdot \\frac{\\text{year}}{\\tau},

with ``P`` the pool's PT, ``A`` its SY in asset (``SY * index``), ``tau`` the time to expiry and the anchor
``a`` set so that ``E(0) = exp(lnImpliedRate * tau / year)``. With ``F = exp(lnFeeRateRoot * tau / year)`` a
buyer of ``d`` PT pays ``d F / E(d)`` asset and a seller of ``q`` receives ``q / (F E(-q))``. The market
refuses trades that push ``p`` above 96 % or ``E`` (after the fee, for buys) below 1.

The position is marked at the pre-trade price ``1 / E(0)`` (``exp(-lnImpliedRate * tau / year)``, what the
snapshot's ``price`` says), so trading ``delta`` of value (base currency, + buys) costs once

.. math::

    c(\\delta) = \\text{paid} - \\delta \\;(\\delta > 0), \\qquad
    c(\\delta) = |\\delta| - \\text{received} \\;(\\delta < 0),

convex on each side with a kink at zero (the fee). :meth:`PendleAmm.cost_lines` gives lines whose maximum is
the piecewise-linear interpolation of ``c`` through knots chosen so that it is within a stated tolerance
of ``c`` (chords of a convex function lie above it: the program never understates the cost). Floats
throughout: against the integer contract the amounts agree to about 1e-12 relative (tests compare with the
real market's swaps on a local node).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from bondfolio.inputs.snapshot import PendleCurve

__all__ = ["MAX_PROPORTION", "PendleAmm"]

YEAR = 365 * 24 * 3600
WAD = 1e18
#: MarketMathCore's MAX_MARKET_PROPORTION: a trade may not leave more than 96 % of the pool in PT.
MAX_PROPORTION = 0.96
#: The approximation libraries' headroom below the largest possible PT out (calcMaxPtOut's 999/1000).
MAX_OUT_SHARE = 0.999


@dataclass(frozen=True)
class PendleAmm:
    """One market at one moment: amounts in whole tokens (PT, SY and asset share decimals)."""

    pt: float
    """PT in the pool."""
    asset: float
    """The pool's SY in asset (``SY * index``)."""
    rate_scalar: float
    anchor: float
    fee: float
    """``F``: a buyer pays ``F`` times the pre-fee price, a seller receives ``1 / F`` of it."""
    implied: float
    """``E(0)``: asset per PT before any trade (``1 / price``)."""
    deposit_ratio: float
    """Market asset per asset paid in (``index / SY.exchangeRate()``: 1 unless the PY index is above the
    SY's rate)."""

    @classmethod
    def of(cls, curve: PendleCurve, now: int | None = None) -> PendleAmm:
        """The market of ``curve`` at unix time ``now`` (default: its read time)."""
        t = curve.timestamp if now is None else now
        tau = curve.expiry - t
        if tau <= 0:
            raise ValueError("the market has expired: it no longer trades")
        scale = 10.0 ** curve.decimals
        pt = curve.total_pt / scale
        asset = curve.total_sy * (curve.py_index / WAD) / scale
        rate_scalar = curve.scalar_root / WAD * YEAR / tau
        implied = math.exp(curve.ln_implied_rate / WAD * tau / YEAR)
        share = pt / (pt + asset)
        anchor = implied - math.log(share / (1 - share)) / rate_scalar
        fee = math.exp(curve.ln_fee_rate_root / WAD * tau / YEAR)
        return cls(pt, asset, rate_scalar, anchor, fee, implied, curve.py_index / curve.sy_exchange_rate)

    # ------------------------------------------------------------------ the curve in PT
    @property
    def price(self) -> float:
        """Asset per PT before a trade: ``exp(-lnImpliedRate * tau / year)``."""
        return 1.0 / self.implied

    def _share(self, d: np.ndarray) -> np.ndarray:
        return (self.pt - d) / (self.pt + self.asset)

    def exchange_rate(self, d: np.ndarray | float) -> np.ndarray:
        """``E(d)``: asset per PT (before the fee) for a trade of ``d`` PT to the trader."""
        p = self._share(np.asarray(d, dtype=float))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(np.log(p / (1 - p)) / self.rate_scalar + self.anchor)

    def _rate_slope(self, d: np.ndarray) -> np.ndarray:
        p = self._share(d)
        return np.asarray(-1.0 / (self.rate_scalar * (self.pt + self.asset) * p * (1 - p)))

    def max_pt_out(self) -> float:
        """The most PT a buyer can take: where ``E / F`` reaches 1, less the approximation's 0.1 %."""
        logit = math.exp((self.fee - self.anchor) * self.rate_scalar)
        p = logit / (1 + logit)
        return max((self.pt - p * (self.pt + self.asset)) * MAX_OUT_SHARE, 0.0)

    def max_pt_in(self) -> float:
        """The most PT a seller can put in before the pool is 96 % PT."""
        return max(MAX_PROPORTION * (self.pt + self.asset) - self.pt, 0.0)

    def asset_in_for_pt(self, d: np.ndarray | float) -> np.ndarray:
        """Asset paid (by the buyer, in the asset token) for exactly ``d >= 0`` PT."""
        d = np.asarray(d, dtype=float)
        return np.asarray(d * self.fee / self.exchange_rate(d) / self.deposit_ratio)

    def asset_out_for_pt(self, q: np.ndarray | float) -> np.ndarray:
        """Asset received (in the asset token) for selling ``q >= 0`` PT."""
        q = np.asarray(q, dtype=float)
        return np.asarray(q / (self.fee * self.exchange_rate(-q)) / self.deposit_ratio)

    def pt_out_for_asset(self, a: float) -> float:
        """PT a buyer gets for exactly ``a`` of the asset (what ``swapExactTokenForPt`` returns at most):
        the root of ``asset_in_for_pt(d) = a`` (increasing in ``d``), by bisection to 1e-15 relative."""
        if a <= 0:
            return 0.0
        hi = self.max_pt_out()
        if float(self.asset_in_for_pt(hi)) < a:
            raise ValueError(f"{a:.6g} of the asset buys more PT than the market can give ({hi:.6g} at most)")
        lo = 0.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if float(self.asset_in_for_pt(mid)) <= a:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-15 * hi:
                break
        return lo

    # ------------------------------------------------------------------ the cost in value
    def cost(self, delta: np.ndarray | float, unit_price: float) -> np.ndarray:
        """One-off cost (base currency) of trading ``delta`` of value (base currency at the pre-trade
        mark, + buys), the asset worth ``unit_price`` base currency per token."""
        delta = np.asarray(delta, dtype=float)
        mark = self.price * unit_price
        d = delta / mark
        buy = unit_price * self.asset_in_for_pt(np.maximum(d, 0.0)) - np.maximum(delta, 0.0)
        sell = np.maximum(-delta, 0.0) - unit_price * self.asset_out_for_pt(np.maximum(-d, 0.0))
        return np.asarray(np.where(delta >= 0, buy, sell))

    def _buy_slope(self, delta: float, unit_price: float) -> float:
        b = max(delta, 0.0) / (self.price * unit_price)
        e = float(self.exchange_rate(b))
        paid = (self.fee / e - b * self.fee * float(self._rate_slope(np.asarray(b))) / e**2) / self.deposit_ratio
        return paid / self.price - 1.0

    def _sell_slope(self, delta: float, unit_price: float) -> float:
        q = max(-delta, 0.0) / (self.price * unit_price)
        e = float(self.exchange_rate(-q))
        got = (1.0 / (self.fee * e) + q * float(self._rate_slope(np.asarray(-q))) / (self.fee * e**2)) \
            / self.deposit_ratio
        return got / self.price - 1.0

    def cost_slope(self, delta: float, unit_price: float, side: int = 1) -> float:
        """``dc / d delta`` at ``delta``; at zero, the buying side (``side = 1``) or the selling side (-1)."""
        buying = delta > 0 or (delta == 0 and side > 0)
        return self._buy_slope(delta, unit_price) if buying else self._sell_slope(delta, unit_price)

    def cost_lines(self, lo: float, hi: float, unit_price: float, tol: float, floor: float
                   ) -> tuple[np.ndarray, np.ndarray, float]:
        """Knots on ``[lo, hi]`` (trade value, base currency; ``lo <= 0 <= hi``) whose piecewise-linear
        interpolation of :meth:`cost` is within ``tol * (|delta| + floor)`` of it everywhere.

        The bound used is the chord gap of a convex function: on ``[a, b]`` the chord is at most
        ``(b - a) (c'(b) - c'(a)) / 4`` above ``c``; segments are halved until it holds. Returns the
        knots, the costs there and the largest bound (base currency)."""
        knots = sorted({lo, 0.0, hi})
        out = [knots[0]]
        worst = 0.0
        stack = [(a, b) for a, b in itertools.pairwise(knots) if b > a][::-1]
        while stack:
            a, b = stack.pop()
            left, right = self.cost_slope(a, unit_price, 1), self.cost_slope(b, unit_price, -1)
            gap = (b - a) * max(right - left, 0.0) / 4
            if gap <= tol * (max(abs(a), abs(b)) + floor) or b - a <= 1e-9 * max(abs(a), abs(b), 1.0):
                out.append(b)
                worst = max(worst, gap)
                continue
            m = 0.5 * (a + b)
            stack += [(m, b), (a, m)]
        x = np.array(out)
        return x, self.cost(x, unit_price), worst
