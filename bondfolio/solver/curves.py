"""Yields that respond to our own deposits: exact protocol curves and their concave envelopes.

For a market with borrow ``B`` and supply ``S`` of which we already hold ``h``, holding ``x`` in total
gives utilization ``U(x) = B / (S - h + x)`` and the supply rate of the protocol's own curve. Our
annual income is ``I(x) = x * apy(x)``. :class:`MarketCurve` evaluates it exactly (the same formulas as
the contracts, Comet's integer arithmetic included). :func:`envelope` turns it into a few lines whose
minimum is the upper concave hull of ``I`` sampled finely enough that, where ``I`` is concave, the
lines are within ``tol`` of it (chords of a concave function lie below it, so the model never
overstates a concave income by more than ``tol``). Where ``I`` is not concave (a pool above its kink)
the hull bridges the dip; the solver detects a solution on such a bridge and repairs it.
:func:`envelopes` builds many markets' envelopes in one vectorized pass (each exactly as
:func:`envelope` alone); :class:`CurveSet` evaluates many markets' float incomes at once.

Conventions, as each protocol's own app shows them: Aave and Compound compound per second
(``(1 + apr / 31536000) ** 31536000 - 1``); Morpho compounds continuously (``expm1(apr)``); vaults
dilute a fixed yield amount over their assets (``apy(x) = apy0 * T / (T - h + x)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bondfolio.inputs.snapshot import AdaptiveCurve, DilutionCurve, KinkedCurve, Opportunity

__all__ = ["CurveSet", "Envelope", "MarketCurve", "curve_for", "envelope", "envelopes", "upper_hull"]

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
        return _utilization(self.supply_others, self.borrow, np.asarray(x, dtype=float))

    def utilization_wad(self, xs: np.ndarray) -> list[int]:
        """Utilization scaled by 1e18 and truncated, exactly (``floor(B * 1e18 / (S - h + x))``, 0 when
        nothing is supplied), as the contracts compute it: the floats are exact binary fractions."""
        bn, bd = float(self.borrow).as_integer_ratio()
        sn, sd = float(self.supply_others).as_integer_ratio()
        out = []
        for xv in xs:
            xn, xd = float(xv).as_integer_ratio()
            supply = sn * xd + xn * sd  # (S - h + x) * sd * xd
            out.append((bn * WAD * sd * xd) // (bd * supply) if supply > 0 else 0)
        return out

    def apr(self, x: np.ndarray | float, exact: bool = True) -> np.ndarray:
        """Supply APR (decimal) when we hold ``x`` in total. ``exact=False`` uses vectorized float
        formulas for Comet and Morpho instead of their integer arithmetic (differences ~1e-9 relative;
        used to sample envelopes, whose tolerance is far coarser)."""
        if not exact or self.model in ("aave", "dilution"):
            return _float_apr(self.model, self.supply_others, self.borrow, self.params, np.asarray(x, dtype=float))
        u = self.utilization(x)
        p = self.params
        if self.model == "comet":
            # Comet's own integer arithmetic: per-second rates and utilization scaled by 1e18, truncated
            base_i, low_i, high_i, kink_i = (int(v) for v in p)
            xs = np.atleast_1d(np.asarray(x, dtype=float))
            out = np.empty(xs.shape)
            for k, u_i in enumerate(self.utilization_wad(xs)):
                if u_i <= kink_i:
                    rate = base_i + low_i * u_i // WAD
                else:
                    rate = base_i + low_i * kink_i // WAD + high_i * (u_i - kink_i) // WAD
                out[k] = rate * SECONDS_PER_YEAR / WAD
            return out.reshape(np.shape(x))
        if self.model == "adaptive":
            fee = p[3]
            return np.asarray(self.borrow_apr(x, exact) * u * (1 - fee))
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
            return _adaptive_borrow_float(u, p)
        at_target = round(p[0] * WAD / SECONDS_PER_YEAR)
        target, steep = round(p[1] * WAD), round(p[2] * WAD)
        xs = np.atleast_1d(np.asarray(x, dtype=float))
        out = np.empty(xs.shape)
        for k, u_i in enumerate(self.utilization_wad(xs)):
            norm = WAD - target if u_i > target else target
            err_i = _div_to_zero((u_i - target) * WAD, norm)
            coeff_i = WAD - _div_to_zero(WAD * WAD, steep) if err_i < 0 else steep - WAD
            rate = _div_to_zero((_div_to_zero(coeff_i * err_i, WAD) + WAD) * at_target, WAD)
            out[k] = rate * SECONDS_PER_YEAR / WAD
        return out.reshape(np.shape(x))

    def apy(self, x: np.ndarray | float, exact: bool = True) -> np.ndarray:
        """Supply APY in the protocol's own convention."""
        return _apy_of_apr(self.model, self.apr(x, exact))

    def income(self, x: np.ndarray | float, exact: bool = True) -> np.ndarray:
        """Annual income ``x * apy(x)``, base currency."""
        return np.asarray(np.asarray(x, dtype=float) * self.apy(x, exact))


def _div_to_zero(a: int, b: int) -> int:
    """Integer division truncating toward zero (Solidity's signed ``/``)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _utilization(others: np.ndarray | float, borrow: np.ndarray | float, x: np.ndarray) -> np.ndarray:
    total = others + x
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(total > 0, borrow / np.maximum(total, 1e-300), 0.0))


def _adaptive_borrow_float(u: np.ndarray, p: tuple[Any, ...]) -> np.ndarray:
    at, tgt, stp = p[0], p[1], p[2]
    err = np.where(u <= tgt, (u - tgt) / tgt, (u - tgt) / (1 - tgt))
    coeff = np.where(err < 0, 1 - 1 / stp, stp - 1)
    return np.asarray((1 + coeff * err) * at)


def _float_apr(model: str, others: np.ndarray | float, borrow: np.ndarray | float, p: tuple[Any, ...],
               x: np.ndarray) -> np.ndarray:
    """The supply APR's float formulas: one market (scalar parameters) or many at once (parameter
    arrays of ``x``'s shape), element for element the same arithmetic."""
    if model == "dilution":
        (yield_amount,) = p
        total = others + x
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(np.where(total > 0, yield_amount / np.maximum(total, 1e-300), 0.0))
    u = _utilization(others, borrow, x)
    if model == "aave":
        base, low, high, kink, rf = p
        rate = np.where(u <= kink, base + low * u / kink, base + low + high * (u - kink) / (1 - kink))
        return np.asarray(rate * u * (1 - rf))
    if model == "comet":
        base, low, high, kink = (v / WAD for v in p)
        per_second = base + low * np.minimum(u, kink) + high * np.maximum(u - kink, 0.0)
        return np.asarray(per_second * SECONDS_PER_YEAR)
    if model == "adaptive":
        return np.asarray(_adaptive_borrow_float(u, p) * u * (1 - p[3]))
    raise ValueError(model)


def _apy_of_apr(model: str, r: np.ndarray) -> np.ndarray:
    """Supply APY from APR in the protocol's own convention."""
    if model in ("aave", "comet"):
        return np.asarray(np.expm1(SECONDS_PER_YEAR * np.log1p(r / SECONDS_PER_YEAR)))
    if model == "adaptive":
        return np.asarray(np.expm1(r))
    return np.asarray(r)  # dilution: already a yield over the holding period


class CurveSet:
    """Many markets' float incomes at once (``MarketCurve.income(x, exact=False)``, point for point the
    same numbers): each point ``x[k]`` belongs to market ``owner[k]``."""

    def __init__(self, curves: Sequence[MarketCurve]) -> None:
        self.curves = list(curves)
        self.models = np.array([c.model for c in curves])
        self.groups: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]] = []
        self.group_of = np.zeros(len(curves), dtype=int)
        for g, model in enumerate(dict.fromkeys(c.model for c in curves)):
            members = np.flatnonzero(self.models == model)
            self.group_of[members] = g
            chosen = [curves[int(k)] for k in members]
            # comet's integer parameters stay integers (int64, exact below 2**63): divided by WAD as the
            # single curve divides them
            params = tuple(np.array(col, dtype=np.int64 if model == "comet" else float)
                           for col in zip(*(c.params for c in chosen), strict=True))
            self.groups.append((model, members, np.array([c.supply_others for c in chosen]),
                                np.array([c.borrow for c in chosen]), params))
        self.rank = np.zeros(len(curves), dtype=int)  # position of each market within its group
        for _, members, *_ in self.groups:
            self.rank[members] = np.arange(members.size)

    def income(self, x: np.ndarray, owner: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape)
        group = self.group_of[owner]
        for g, (model, _, others, borrow, params) in enumerate(self.groups):
            sel = np.flatnonzero(group == g)
            if not sel.size:
                continue
            r = self.rank[owner[sel]]
            xs = x[sel]
            apr = _float_apr(model, others[r], borrow[r], tuple(p[r] for p in params), xs)
            out[sel] = xs * _apy_of_apr(model, apr)
        return out


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
    ``x_min > 0`` builds the envelope of a window ``[x_min, x_max]`` only (for local refinement).
    One market of :func:`envelopes`."""
    return envelopes([curve], [x_max], rel_tol, floor, max_points, [x_min])[0]


def envelopes(curves: Sequence[MarketCurve], x_max: Sequence[float] | np.ndarray, rel_tol: float,
              floor: float = 0.0, max_points: int = 4000,
              x_min: Sequence[float] | np.ndarray | None = None, first: tuple[int, int] = (17, 16)) -> list[Envelope]:
    """:func:`envelope` of many markets at once, each exactly as alone (the same samples, the same
    refinement, the same lines), in one pass over all their points instead of one per market.

    The samples of all markets sit in one array sorted by (market, x); every step (hull, chord gaps,
    splitting coarse segments, closing in on bridge ends) is one vectorized operation over it, and a
    market leaves the working set when its refinement stops (no new points, or ``max_points``).
    ``first``: how many evenly spaced and geometric (from ``1e-6 x_max``) samples to start from.
    """
    m = len(curves)
    hi = np.asarray(x_max, dtype=float).reshape(m)
    lo = np.zeros(m) if x_min is None else np.asarray(x_min, dtype=float).reshape(m)
    out: list[Envelope | None] = [None] * m
    live = []
    for r in range(m):
        if hi[r] <= lo[r]:
            out[r] = Envelope(np.zeros(1), np.zeros(1), np.array([lo[r]]), [], 0.0, float(hi[r]))
        else:
            live.append(r)
    if not live:
        return [e for e in out if e is not None]
    cset = CurveSet([curves[r] for r in live])
    n = len(live)
    lo, hi = lo[live], hi[live]
    # the first samples: evenly spaced, geometric from 1e-6 x_max (windows from 0), the kinks
    even, geometric = first
    from_zero = np.flatnonzero(lo == 0.0)
    kinks = [_kink_points(c, float(h)) for c, h in zip(cset.curves, hi, strict=True)]
    kink_own = np.repeat(np.arange(n), [k.size for k in kinks])
    kink_x = np.concatenate(kinks)
    above = kink_x > lo[kink_own]
    xs = np.concatenate([np.linspace(lo, hi, even, axis=1).ravel(), kink_x[above],
                         (hi[from_zero, None] * np.geomspace(1e-6, 1.0, geometric)).ravel()])
    own = np.concatenate([np.repeat(np.arange(n), even), kink_own[above], np.repeat(from_zero, geometric)])
    order = np.lexsort((xs, own))
    xs, own = xs[order], own[order]
    distinct = np.concatenate([[True], (np.diff(xs) > 0) | (np.diff(own) != 0)])
    xs, own = xs[distinct], own[distinct]
    fs = cset.income(xs, own)
    midpoint_bound = np.zeros(n)
    done_x, done_f, done_o = [], [], []
    while xs.size:
        hull = _flat_upper_hull(xs, fs, own)
        i, j = hull[:-1], hull[1:]
        same = own[i] == own[j]
        i, j = i[same], j[same]
        adjacent = j == i + 1
        # concave stretches: the chord's error at each midpoint, all in one evaluation
        ia, ja = i[adjacent], j[adjacent]
        seg_own = own[ia]
        mids = 0.5 * (xs[ia] + xs[ja])
        chords = fs[ia] + (fs[ja] - fs[ia]) * 0.5
        gaps = np.abs(cset.income(mids, seg_own) - chords) / (mids + floor)
        have = np.bincount(own, minlength=n)
        active = np.flatnonzero(have)
        worst = np.zeros(n)
        np.maximum.at(worst, seg_own, gaps)
        midpoint_bound[active] = worst[active]
        # a chord's error shrinks with the square of its length: split each coarse segment into
        # ceil(sqrt(gap / tol)) pieces at once, so refinement converges in a couple of passes
        coarse = gaps > rel_tol
        pieces = np.ceil(np.sqrt(gaps[coarse] / rel_tol)).astype(int)
        left, width = xs[ia][coarse], xs[ja][coarse] - xs[ia][coarse]
        count = pieces - 1
        start = np.repeat(np.cumsum(count) - count, count)
        step = np.arange(int(count.sum())) - start + 1
        new_x = [np.repeat(left, count) + np.repeat(width, count) * step / np.repeat(pieces, count)]
        new_o = [np.repeat(seg_own[coarse], count)]
        new_at = [np.repeat(ja[coarse], count)]  # each new point goes in before this sample
        # bridges: their ends are tangency points only as fine as the samples beside them, and the
        # income may rise above the chord just past an end; close in on each end geometrically
        gap_i, gap_j = i[~adjacent], j[~adjacent]
        for end, nb in ((gap_i, gap_i + 1), (gap_j, gap_j - 1)):
            far = np.abs(xs[nb] - xs[end]) > 1e-5 * hi[own[end]]
            new_x.append(xs[end][far] + 0.25 * (xs[nb][far] - xs[end][far]))
            new_o.append(own[end][far])
            new_at.append(np.maximum(end, nb)[far])
        nx, no, at = np.concatenate(new_x), np.concatenate(new_o), np.concatenate(new_at)
        adding = np.bincount(no, minlength=n)
        stop = np.zeros(n, dtype=bool)
        stop[active] = (adding[active] == 0) | (have[active] + adding[active] > max_points)
        if stop.any():  # these markets are finished: out of the working set
            leaving = stop[own]
            done_x.append(xs[leaving])
            done_f.append(fs[leaving])
            done_o.append(own[leaving])
            xs, fs, own = xs[~leaving], fs[~leaving], own[~leaving]
            keep_new = ~stop[no]
            nx, no, at = nx[keep_new], no[keep_new], at[keep_new] - np.cumsum(leaving)[at[keep_new] - 1]
        if not nx.size:
            continue
        # every new point lies strictly between two neighbouring samples (one gap gives points from
        # one source only, in increasing order): inserting at those gaps keeps the (market, x) order
        order = np.argsort(at, kind="stable")
        nx, no, at = nx[order], no[order], at[order]
        xs, fs, own = np.insert(xs, at, nx), np.insert(fs, at, cset.income(nx, no)), np.insert(own, at, no)
        distinct = np.concatenate([[True], (np.diff(xs) > 0) | (np.diff(own) != 0)])
        xs, fs, own = xs[distinct], fs[distinct], own[distinct]
    own = np.concatenate(done_o)
    order = np.argsort(own, kind="stable")  # each market's samples come from one chunk, in order
    xs, fs, own = np.concatenate(done_x)[order], np.concatenate(done_f)[order], own[order]
    return _finish(out, live, xs, fs, own, hi, rel_tol, floor, midpoint_bound)


def _finish(out: list[Envelope | None], live: list[int], xs: np.ndarray, fs: np.ndarray, own: np.ndarray,
            hi: np.ndarray, rel_tol: float, floor: float, midpoint_bound: np.ndarray) -> list[Envelope]:
    """The lines, bridges and bound of each market from its final samples (see :class:`Envelope`)."""
    n = len(live)
    hull = _flat_upper_hull(xs, fs, own)
    same = own[hull[:-1]] == own[hull[1:]]
    left, right = hull[:-1][same], hull[1:][same]  # each market's hull segments, in order
    slopes = (fs[right] - fs[left]) / (xs[right] - xs[left])
    a = fs[left] - slopes * xs[left]
    concave = xs + floor > 0
    bridges: list[list[tuple[float, float]]] = [[] for _ in range(n)]
    for s in np.flatnonzero(right > left + 1):
        lo, up = int(left[s]), int(right[s])
        inner = slice(lo + 1, up)
        chord = fs[lo] + (fs[up] - fs[lo]) * (xs[inner] - xs[lo]) / (xs[up] - xs[lo])
        if np.any(fs[inner] < chord - rel_tol * (xs[inner] + floor)):
            bridges[int(own[lo])].append((float(xs[lo]), float(xs[up])))
            concave[inner] = False
    cuts = np.searchsorted(own[left], np.arange(n + 1))
    knot_cuts = np.searchsorted(own[hull], np.arange(n + 1))
    sample_cuts = np.searchsorted(own, np.arange(n + 1))
    for k, r in enumerate(live):
        ak, bk = a[cuts[k]:cuts[k + 1]], slopes[cuts[k]:cuts[k + 1]]
        # relative error where the income is concave: at the samples (against the minimum of the
        # lines), plus the sampling's midpoint bound
        part = slice(sample_cuts[k], sample_cuts[k + 1])
        x, f, ok = xs[part], fs[part], concave[part]
        model = np.min(ak[None, :] + bk[None, :] * x[:, None], axis=1)
        sample = np.abs(f - model)[ok] / (x[ok] + floor)
        bound = float(np.max(sample, initial=0.0)) + float(midpoint_bound[k])
        out[r] = Envelope(ak, bk, xs[hull[knot_cuts[k]:knot_cuts[k + 1]]], bridges[k], bound, float(hi[k]))
    return [e for e in out if e is not None]


def _flat_upper_hull(xs: np.ndarray, fs: np.ndarray, own: np.ndarray) -> np.ndarray:
    """:func:`upper_hull` of each market's points at once (points sorted by market, then x): a point is
    dropped only against two neighbours of its own market, so every market's hull is as alone. Each
    pass after the first tests only the points whose neighbours the previous pass removed (the others'
    test would not change), so the passes a bridge needs cost what the bridge has, not the whole set."""
    n = xs.size
    alive = np.ones(n, dtype=bool)
    prev, nxt = np.arange(n) - 1, np.arange(n) + 1
    # interior points of each market: the ends are always kept
    test = np.flatnonzero((own[np.maximum(prev, 0)] == own) & (own[np.minimum(nxt, n - 1)] == own)
                          & (prev >= 0) & (nxt < n))
    while test.size:
        p, q = prev[test], nxt[test]
        below = (fs[test] - fs[p]) * (xs[q] - xs[p]) <= (fs[q] - fs[p]) * (xs[test] - xs[p])
        gone = test[below]
        if not gone.size:
            break
        alive[gone] = False
        # unlink the removed points (runs of them at once): each survivor's neighbour is the next survivor
        p, q = prev[gone], nxt[gone]
        left = p[alive[p]]
        right = q[alive[q]]
        # for each run of removed points, the survivors on either side
        run_left = np.maximum.accumulate(np.where(alive[p], p, -1))
        run_right = np.minimum.accumulate(np.where(alive[q], q, n)[::-1])[::-1]
        nxt[run_left] = run_right
        prev[run_right] = run_left
        cand = np.unique(np.concatenate([left, right]))
        cand = cand[(own[prev[cand].clip(0)] == own[cand]) & (prev[cand] >= 0)]
        cand = cand[(nxt[cand] < n)]
        test = cand[own[nxt[cand].clip(max=n - 1)] == own[cand]]
    return np.flatnonzero(alive)


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
