"""Yields that respond to our own deposits: exact protocol curves and their concave envelopes.

For a market with borrow ``B`` and supply ``S`` of which we already hold ``h``, holding ``x`` in total
gives utilization ``U(x) = B / (S - h + x)`` and the supply rate of the protocol's own curve. Our
annual income is ``I(x) = x * apy(x)``. :class:`MarketCurve` evaluates it exactly (the same formulas as
the contracts, Comet's integer arithmetic included). :func:`envelope` turns it into a few lines whose
minimum is the upper concave hull of ``I`` sampled finely enough that, where ``I`` is concave, the
lines are within ``tol`` of it (chords of a concave function lie below it, so the model never
overstates a concave income by more than ``tol``). Where ``I`` is not concave (a pool above its kink)
the hull bridges the dip; the solver detects a solution on such a bridge and repairs it.

Conventions, as each protocol's own app shows them: Aave and Compound compound per second
(``(1 + apr / 31536000) ** 31536000 - 1``); Morpho compounds continuously (``expm1(apr)``); vaults
dilute a fixed yield amount over their assets (``apy(x) = apy0 * T / (T - h + x)``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bondfolio.inputs.snapshot import AdaptiveCurve, DilutionCurve, KinkedCurve, Opportunity

__all__ = ["Envelope", "MarketCurve", "curve_for", "envelope", "upper_hull"]

SECONDS_PER_YEAR = 365 * 24 * 3600
WAD = 10**18


@dataclass(frozen=True)
class MarketCurve:
    """The exact supply-rate curve of one market as a function of our total holding ``x`` (base currency).

    ``model`` is ``aave`` (kinked borrow curve; suppliers get ``r_b(U) U (1 - rf)``), ``comet`` (kinked
    supply curve, per-second integer rates), ``adaptive`` (Morpho at the current rate at target) or
    ``dilution`` (a yield amount shared over the vault's assets).
    """

    model: str
    supply_others: float
    """Supply excluding our current holding, base currency (``S - h``; for dilution, ``T - h``)."""
    borrow: float
    params: tuple[float, ...]
    held: float

    # ------------------------------------------------------------------ exact curves
    def utilization(self, x: np.ndarray | float) -> np.ndarray:
        total = self.supply_others + np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, self.borrow / np.maximum(total, 1e-300), 0.0)

    def apr(self, x: np.ndarray | float, exact: bool = True) -> np.ndarray:
        """Supply APR (decimal) when we hold ``x`` in total. ``exact=False`` uses vectorized float
        formulas for Comet and Morpho instead of their integer arithmetic (differences ~1e-9 relative;
        used to sample envelopes, whose tolerance is far coarser)."""
        u = self.utilization(x)
        p = self.params
        if self.model == "aave":
            base, low, high, kink, rf = p
            borrow = np.where(u <= kink, base + low * u / kink, base + low + high * (u - kink) / (1 - kink))
            return np.asarray(borrow * u * (1 - rf))
        if self.model == "comet" and not exact:
            base, low, high, kink = (v / WAD for v in p)
            per_second = base + low * np.minimum(u, kink) + high * np.maximum(u - kink, 0.0)
            return np.asarray(per_second * SECONDS_PER_YEAR)
        if self.model == "comet":
            # Comet's own integer arithmetic: per-second rates and utilization scaled by 1e18, truncated
            base_i, low_i, high_i, kink_i = (int(v) for v in p)
            xs = np.atleast_1d(np.asarray(x, dtype=float))
            out = np.empty(xs.shape)
            for k, xv in enumerate(xs):
                supply = Fraction(self.supply_others) + Fraction(float(xv))
                u_i = math.floor(Fraction(self.borrow) * WAD / supply) if supply > 0 else 0
                if u_i <= kink_i:
                    rate = base_i + low_i * u_i // WAD
                else:
                    rate = base_i + low_i * kink_i // WAD + high_i * (u_i - kink_i) // WAD
                out[k] = rate * SECONDS_PER_YEAR / WAD
            return out.reshape(np.shape(x))
        if self.model == "adaptive":
            fee = p[3]
            return np.asarray(self.borrow_apr(x, exact) * u * (1 - fee))
        if self.model == "dilution":
            (yield_amount,) = p
            total = self.supply_others + np.asarray(x, dtype=float)
            return np.asarray(np.where(total > 0, yield_amount / np.maximum(total, 1e-300), 0.0))
        raise ValueError(self.model)

    def borrow_apr(self, x: np.ndarray | float, exact: bool = True) -> np.ndarray:
        """Borrow APR when we hold ``x`` (``aave``, ``adaptive``). The adaptive curve is evaluated in
        Morpho's own integer arithmetic (per-second rates in 1e18, truncating divisions) at the
        current rate at target, i.e. as ``borrowRateView`` answers right after an accrual."""
        u = self.utilization(x)
        p = self.params
        if self.model == "aave":
            base, low, high, kink, _ = p
            return np.asarray(np.where(u <= kink, base + low * u / kink, base + low + high * (u - kink) / (1 - kink)))
        if self.model != "adaptive":
            raise ValueError(f"{self.model} curves have no borrow rate")
        if not exact:
            at, tgt, stp = p[0], p[1], p[2]
            err = np.where(u <= tgt, (u - tgt) / tgt, (u - tgt) / (1 - tgt))
            coeff = np.where(err < 0, 1 - 1 / stp, stp - 1)
            return np.asarray((1 + coeff * err) * at)
        at_target = round(p[0] * WAD / SECONDS_PER_YEAR)
        target, steep = round(p[1] * WAD), round(p[2] * WAD)
        xs = np.atleast_1d(np.asarray(x, dtype=float))
        out = np.empty(xs.shape)
        for k, xv in enumerate(xs):
            supply = Fraction(self.supply_others) + Fraction(float(xv))
            u_i = math.floor(Fraction(self.borrow) * WAD / supply) if supply > 0 else 0
            norm = WAD - target if u_i > target else target
            err_i = _div_to_zero((u_i - target) * WAD, norm)
            coeff_i = WAD - _div_to_zero(WAD * WAD, steep) if err_i < 0 else steep - WAD
            rate = _div_to_zero((_div_to_zero(coeff_i * err_i, WAD) + WAD) * at_target, WAD)
            out[k] = rate * SECONDS_PER_YEAR / WAD
        return out.reshape(np.shape(x))

    def apy(self, x: np.ndarray | float, exact: bool = True) -> np.ndarray:
        """Supply APY in the protocol's own convention."""
        r = self.apr(x, exact)
        if self.model in ("aave", "comet"):
            return np.asarray(np.expm1(SECONDS_PER_YEAR * np.log1p(r / SECONDS_PER_YEAR)))
        if self.model == "adaptive":
            return np.asarray(np.expm1(r))
        return np.asarray(r)  # dilution: already a yield over the holding period

    def income(self, x: np.ndarray | float, exact: bool = True) -> np.ndarray:
        """Annual income ``x * apy(x)``, base currency."""
        return np.asarray(np.asarray(x, dtype=float) * self.apy(x, exact))


def _div_to_zero(a: int, b: int) -> int:
    """Integer division truncating toward zero (Solidity's signed ``/``)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def curve_for(opp: Opportunity, held: float) -> MarketCurve | None:
    """The curve of an opportunity (``held``: our current amount in it, base currency), or ``None``."""
    c = opp.rate_curve
    if isinstance(c, KinkedCurve):
        others = max(c.total_supply - held, 0.0)
        if c.applies_to == "borrow":
            return MarketCurve("aave", others, c.total_borrow, (c.base, c.slope_low, c.slope_high, c.kink,
                                                                 c.reserve_factor), held)
        per_second = tuple(round(v * WAD / SECONDS_PER_YEAR) for v in (c.base, c.slope_low, c.slope_high))
        return MarketCurve("comet", others, c.total_borrow, (*per_second, round(c.kink * WAD)), held)
    if isinstance(c, DilutionCurve):
        # the yield amount at the read block, shared over the others' assets plus ours
        return MarketCurve("dilution", max(c.total_assets - held, 0.0), 0.0, (opp.apy * c.total_assets,), held)
    if isinstance(c, AdaptiveCurve):
        others = max(c.total_supply - held, 0.0)
        return MarketCurve("adaptive", others, c.total_borrow, (c.rate_at_target, c.target_utilization,
                                                                 c.steepness, c.fee), held)
    return None


@dataclass(frozen=True)
class Envelope:
    """Lines ``income <= a_k + b_k * x`` (x in base currency) whose minimum is the model of income.

    ``knots`` are the kept hull points; ``bridges`` are the x-intervals where the hull lies above the
    true income (non-concave stretches); ``bound`` is the largest ``|model - income| / (x + floor)``
    found on concave stretches (at the samples, plus the sampling's midpoint bound).
    """

    a: np.ndarray
    b: np.ndarray
    knots: np.ndarray
    bridges: list[tuple[float, float]]
    bound: float
    x_max: float

    def value(self, x: float) -> float:
        return float(np.min(self.a + self.b * x))


def envelope(curve: MarketCurve, x_max: float, rel_tol: float, floor: float = 0.0,
             max_points: int = 4000, x_min: float = 0.0) -> Envelope:
    """The upper concave hull of ``curve.income`` on ``[0, x_max]`` as lines, refined until, where the
    income is concave, every gap between model and income is at most ``rel_tol * (x + floor)``. With
    ``floor = NAV / m`` for m markets, a portfolio's total error is at most ``2 * rel_tol * NAV``
    however many markets it holds, without the many lines a purely relative bound needs near 0.
    ``x_min > 0`` builds the envelope of a window ``[x_min, x_max]`` only (for local refinement)."""
    if x_max <= x_min:
        return Envelope(np.zeros(1), np.zeros(1), np.array([x_min]), [], 0.0, x_max)
    kinks = _kink_points(curve, x_max)
    grid = [np.linspace(x_min, x_max, 17), kinks[kinks > x_min]]
    if x_min == 0.0:
        grid.append(x_max * np.geomspace(1e-6, 1.0, 16))
    xs = np.unique(np.concatenate(grid))
    midpoint_bound = 0.0
    fs = curve.income(xs, exact=False)
    while True:
        hull = np.array(upper_hull(xs, fs))
        i, j = hull[:-1], hull[1:]
        adjacent = j == i + 1
        # concave stretches: the chord's error at each midpoint, all in one evaluation
        ia, ja = i[adjacent], j[adjacent]
        mids = 0.5 * (xs[ia] + xs[ja])
        chords = fs[ia] + (fs[ja] - fs[ia]) * 0.5
        gaps = np.abs(curve.income(mids, exact=False) - chords) / (mids + floor)
        midpoint_bound = float(np.max(gaps, initial=0.0))
        # a chord's error shrinks with the square of its length: split each coarse segment into
        # ceil(sqrt(gap / tol)) pieces at once, so refinement converges in a couple of passes
        coarse = gaps > rel_tol
        pieces = np.ceil(np.sqrt(gaps[coarse] / rel_tol)).astype(int)
        refine = [xs[ia][coarse][k] + (xs[ja][coarse][k] - xs[ia][coarse][k]) * np.arange(1, p) / p
                  for k, p in enumerate(pieces)]
        # bridges: their ends are tangency points only as fine as the samples beside them, and the
        # income may rise above the chord just past an end; close in on each end geometrically
        for end, nb in ((i[~adjacent], i[~adjacent] + 1), (j[~adjacent], j[~adjacent] - 1)):
            far = np.abs(xs[nb] - xs[end]) > 1e-5 * x_max
            refine.append(xs[end][far] + 0.25 * (xs[nb][far] - xs[end][far]))
        new = np.concatenate(refine)
        if new.size == 0 or xs.size + new.size > max_points:
            break
        xs = np.concatenate([xs, new])
        order = np.argsort(xs, kind="stable")
        xs, fs = xs[order], np.concatenate([fs, curve.income(new, exact=False)])[order]
        distinct = np.concatenate([[True], np.diff(xs) > 0])
        xs, fs = xs[distinct], fs[distinct]
    hull_list = [int(k) for k in upper_hull(xs, fs)]
    hx, hf = xs[hull_list], fs[hull_list]
    slopes = np.diff(hf) / np.diff(hx)
    a = hf[:-1] - slopes * hx[:-1]
    model = np.min(a[None, :] + slopes[None, :] * xs[:, None], axis=1)
    concave = xs + floor > 0
    bridges = []
    for left, right in itertools.pairwise(hull_list):
        if right > left + 1:
            inner = slice(left + 1, right)
            chord = fs[left] + (fs[right] - fs[left]) * (xs[inner] - xs[left]) / (xs[right] - xs[left])
            if np.any(fs[inner] < chord - rel_tol * (xs[inner] + floor)):
                bridges.append((float(xs[left]), float(xs[right])))
                concave[inner] = False
    # relative error where the income is concave: at the samples, plus the sampling's midpoint bound
    sample = np.abs(fs - model)[concave] / (xs[concave] + floor)
    bound = float(np.max(sample, initial=0.0)) + midpoint_bound
    return Envelope(a, slopes, hx, bridges, bound, x_max)


def _kink_points(curve: MarketCurve, x_max: float) -> np.ndarray:
    """Holdings where utilization crosses a kink or target: the curve has a corner there."""
    if curve.model in ("aave", "comet", "adaptive") and curve.borrow > 0:
        kink = curve.params[3] if curve.model == "aave" else (curve.params[3] / WAD if curve.model == "comet"
                                                              else curve.params[1])
        x = curve.borrow / kink - curve.supply_others
        if 0 < x < x_max:
            return np.array([x * (1 - 1e-12), x, x * (1 + 1e-12)])
    return np.zeros(0)


def upper_hull(xs: np.ndarray, fs: np.ndarray) -> list[int]:
    """Indices of the upper concave hull of points sorted by x (collinear points dropped).

    Vectorized: every point on or below the chord of its two neighbours is not a hull vertex (it lies
    under a segment between two points of the set), so all of them go at once, and the pass repeats on
    what is left until none does: a concave sample is done in one pass, a bridge over a dip in a few.
    """
    keep = np.arange(np.asarray(xs).size)
    while keep.size > 2:
        x, f = xs[keep], fs[keep]
        below = (f[1:-1] - f[:-2]) * (x[2:] - x[:-2]) <= (f[2:] - f[:-2]) * (x[1:-1] - x[:-2])
        if not below.any():
            break
        keep = keep[np.concatenate([[True], ~below, [True]])]
    return [int(k) for k in keep]
