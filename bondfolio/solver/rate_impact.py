"""Rate impact inside the program: income of rate-curve markets as concave envelopes, exact afterwards.

For each opportunity with a ``rate_curve`` (see :mod:`bondfolio.solver.curves`) the objective's
``apy_i * w_i`` becomes a variable ``t_i`` (income / NAV) with ``t_i <= a_ik / NAV + b_ik * w_i`` for
every line of the market's envelope. The tolerance is relative to the amount held: where incomes are
concave, each envelope is within ``eps * (x + NAV / m)`` of the income ``I(x)`` (m curve markets,
``eps`` a quarter of ``tol_bp / 1e4``, refined to half of that), so the model of portfolio income is
within ``tol_bp`` basis points of NAV however many markets the book holds (default 0.01 bp).

Large books (more than :data:`REFINE_ABOVE` curve markets) are not given every full-accuracy line at
once. They start from envelopes :data:`COARSE` times looser (built with exactly the same sampling, so
the same bridges); markets without bridges start from envelopes :data:`THIN` times looser instead. After each
solve, a market is done when the program's lines beside its holding are lines of a full-accuracy
envelope; every other market gets a full-accuracy window (all windows built in one vectorized pass)
around the knot its dual price chooses, and the program gains that window's knots nearest the price's
choice. The rounds stop when every market is done, or when the windows could add at most
:data:`ACCEPT` of the tolerance to the objective (the Lagrangian bound of the prices: each market's
best ``income - price * x`` on its window over the program's). When every market is done the solution
is optimal at full accuracy: on each market the program's lines and a full-accuracy envelope agree on
a neighbourhood of the holding, so it is a local and, all being concave, the global optimum.

Where an income is not concave (a pool above its kink), the envelope bridges the dip and may overstate
it. After a solve, a market whose holding lies inside a bridge is *repaired*: the program is solved
again with that holding restricted to the left of the bridge and to the right of it, and the side
with the better exact objective is kept (largest gap first, one market at a time; in large books
each side's solution is refined as above first, and the windows' bridges count too). Every reported
number (APY before and after, portfolio APY, objective) is evaluated on the exact curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.variables import Point, Vars
from bondfolio.errors import InfeasibleError
from bondfolio.inputs.snapshot import AmmCurve, PendleCurve
from bondfolio.inputs.universe import Universe
from bondfolio.solver.curves import CurveSet, Envelope, MarketCurve, curve_for, envelopes, upper_hull
from bondfolio.solver.pendle_amm import PendleAmm
from bondfolio.solver.solve import OBJECTIVE_SCALE, Solution

if TYPE_CHECKING:
    import cvxpy as cp
    import scipy.sparse as sp
else:
    cp = lazy_module("cvxpy", globals(), "cp")
    sp = lazy_module("scipy.sparse", globals(), "sp")

__all__ = ["ACCEPT", "COARSE", "MAX_REFINEMENTS", "NEIGHBOURS", "REFINE_ABOVE", "SPARSE_SAMPLES", "THIN",
           "WINDOW_SAMPLES", "RateImpact", "solve_with_impact"]

#: Rounds of local refinement for large books (see :data:`REFINE_ABOVE`).
MAX_REFINEMENTS = 4

#: Books with more curve markets than this start from envelopes COARSE times looser and refine them
#: to full accuracy around the solution only (a few small re-solves instead of one huge program). The
#: coarse envelopes keep their full first sampling: sparser ones (or a looser COARSE) can miss a hot
#: pool's second optimum beyond its kink (measured: a 0.005 bp shortfall on a 500-market book).
REFINE_ABOVE = 20
COARSE = 100.0

#: Large books' markets whose coarse envelope has no bridges (concave: a local optimum is the global
#: one, and a chord's error is at most twice its midpoint gap however sparse the samples) start the
#: program from envelopes THIN times looser than full accuracy, from SPARSE_SAMPLES first samples:
#: the solution's neighbourhood is refined anyway, and the prices find it as well on fewer lines.
THIN = 1000.0
SPARSE_SAMPLES = (2, 2)

#: First samples (evenly spaced, geometric) of a full-accuracy window: its ends are two coarse
#: segments apart, already resolved by the coarse sampling.
WINDOW_SAMPLES = (3, 4)

#: Full-accuracy knots a refinement gives the program on either side of the holding it aims at.
NEIGHBOURS = 2

#: A large book's solution is kept without further refinement when the full-accuracy envelopes could
#: add at most this share of ``rate_impact_tolerance_bp`` to its objective (a Lagrangian bound).
ACCEPT = 0.01


@dataclass
class RateImpact:
    """The curve markets of one program, their envelopes and the cvxpy pieces that model them."""

    universe: Universe
    tol_bp: float
    upper: np.ndarray | None = None
    """Largest weight each opportunity may take under the program's simple bounds (envelopes are
    built up to ``min(1, upper) * NAV``); ``None`` for no bound beyond the budget."""
    one_off_scale: float = 1.0
    """How many times one-off costs count in the annual objective (``365 / cost_horizon_days``): the
    Pendle cost lines are that much finer, so the objective's error stays within ``tol_bp``."""
    idx: np.ndarray = field(init=False)
    curves: list[MarketCurve] = field(init=False)
    envelopes: list[Envelope] = field(init=False)

    def __post_init__(self) -> None:
        u = self.universe
        held = np.asarray(u.w0) * u.nav
        opps = u.snapshot.opportunities
        self._with_curve = [i for i, c in enumerate(map(attrgetter("rate_curve"), opps)) if c is not None]  # most: none
        idx, curves = [], []
        for i in self._with_curve:
            curve = curve_for(opps[i], float(max(held[i], 0.0)))
            if curve is not None:
                idx.append(i)
                curves.append(curve)
        self.idx = np.array(idx, dtype=int)
        self.curves = curves
        # AMM markets (Pendle PT): a one-off slippage cost depth-scaled, (dw NAV)^2 / (2 depth) / NAV
        amm = [(i, c.depth) for i in self._with_curve if isinstance(c := opps[i].rate_curve, AmmCurve)]
        self.amm_idx = np.array([i for i, _ in amm], dtype=int)
        self.amm_coef = np.array([u.nav / (2 * depth) for _, depth in amm])
        # error <= rel * (x + NAV / m) per market, so at most 2 rel NAV in all; a quarter of the budget,
        # as the sampled envelope's bound is up to about twice its refinement tolerance
        rel = self.tol_bp / 1e4 / 4
        floor = u.nav / max(len(curves), 1)
        caps = np.ones(u.n) if self.upper is None else np.minimum(self.upper, 1.0)
        self.x_max = [float(max(caps[i], 0.0)) * u.nav for i in idx]
        # large books: coarse envelopes first, refined to full accuracy only around the solution
        self.refining = len(curves) > REFINE_ABOVE
        self.rel, self.floor = rel, floor
        self.cset = CurveSet(curves)
        if self.refining:
            self.envelopes = envelopes(curves, self.x_max, rel * COARSE, floor)
        else:
            self.envelopes = envelopes(curves, self.x_max, rel, floor)
        sizes = np.cumsum([e.knots.size for e in self.envelopes])[:-1]
        own = np.repeat(np.arange(len(curves)), [e.knots.size for e in self.envelopes])
        flat_x = np.concatenate([e.knots for e in self.envelopes]) if curves else np.zeros(0)
        flat_f = self.cset.income(flat_x, own) if curves else np.zeros(0)
        self.knots = np.split(flat_x, sizes) if curves else []
        """Each curve market's knots in the program (base currency)."""
        self.values = np.split(flat_f, sizes) if curves else []
        """The float income at each knot (base currency per year)."""
        if self.refining:  # concave markets: the program starts from their sparse envelopes
            concave = [r for r, e in enumerate(self.envelopes) if not e.bridges]
            sparse = envelopes([curves[r] for r in concave], [self.x_max[r] for r in concave], rel * THIN, floor,
                               first=SPARSE_SAMPLES)
            own = np.repeat(np.asarray(concave, dtype=int), [e.knots.size for e in sparse])
            flat_x = np.concatenate([e.knots for e in sparse]) if concave else np.zeros(0)
            flat_f = self.cset.income(flat_x, own)
            cuts = np.cumsum([e.knots.size for e in sparse])[:-1]
            for r, k, f in zip(concave, np.split(flat_x, cuts), np.split(flat_f, cuts), strict=True):
                self.knots[r], self.values[r] = k, f
        self.bridges = [list(e.bridges) for e in self.envelopes]
        """Each market's bridges: its envelope's, and those the full-accuracy windows found (a window
        sees only its part of a bridge: overlapping ones are merged)."""
        self.windows: list[list[tuple[float, float, np.ndarray]]] = [[] for _ in curves]
        """Each market's full-accuracy windows: (from, to, the full-accuracy envelope's knots)."""
        self.branch_lo, self.branch_hi = np.zeros(max(len(curves), 1)), np.full(max(len(curves), 1), 2.0)
        self._exact: tuple[bytes, np.ndarray] | None = None
        self._pendle_markets(caps)

    def _pendle_markets(self, caps: np.ndarray) -> None:
        """Pendle markets on their exact curves: the one-off cost of a trade as the lines through knots
        within ``rel * (|trade| + NAV / m) / one_off_scale`` of it (m curve and Pendle markets), on the
        trades the market allows (sell what is held, at most to 96 % PT in the pool; buy at most the PT
        it can give, and up to the weight's cap)."""
        u = self.universe
        nav = u.nav
        idx, amms, units, lows, highs, knots, costs, bounds = [], [], [], [], [], [], [], []
        pendle = [i for i in self._with_curve if isinstance(u.snapshot.opportunities[i].rate_curve, PendleCurve)]
        tol = self.rel / self.one_off_scale
        floor = nav / max(len(self.curves) + len(pendle), 1)
        for i in pendle:
            opp = u.snapshot.opportunities[i]
            assert isinstance(opp.rate_curve, PendleCurve)
            amm = PendleAmm.of(opp.rate_curve)
            unit = 1.0 if opp.price is None else opp.price / amm.price  # base currency per asset token
            mark = amm.price * unit
            held = max(float(u.w0[i]) * nav, 0.0)
            lo = -min(held, amm.max_pt_in() * mark)
            hi = max(min(float(max(caps[i], 0.0)) * nav - held, amm.max_pt_out() * mark), 0.0)
            x, c, bound = amm.cost_lines(lo, hi, unit, tol, floor)
            idx.append(i)
            amms.append(amm)
            units.append(unit)
            lows.append(lo)
            highs.append(hi)
            knots.append(x)
            costs.append(c)
            bounds.append(bound)
        self.pendle_idx = np.array(idx, dtype=int)
        self.pendle = amms
        self.pendle_unit = np.array(units)
        self.pendle_range = (np.array(lows) / nav, np.array(highs) / nav)
        self.pendle_knots = knots
        self.pendle_costs = costs
        self.pendle_bound = bounds

    @property
    def active(self) -> bool:
        return self.idx.size > 0 or self.amm_idx.size > 0 or self.pendle_idx.size > 0

    def slippage(self, w: np.ndarray) -> np.ndarray:
        """One-off slippage cost / NAV of each ``amm``-model market for trading from current weights to ``w``."""
        dw = np.asarray(w)[self.amm_idx] - np.asarray(self.universe.w0)[self.amm_idx]
        return np.asarray(self.amm_coef * dw**2)

    def pendle_slippage(self, w: np.ndarray) -> np.ndarray:
        """Exact one-off cost / NAV of each Pendle market's trade from current weights to ``w`` (trades
        beyond what the market allows are clipped to it: the program's bounds keep them inside)."""
        nav = self.universe.nav
        out = np.zeros(self.pendle_idx.size)
        lows, highs = self.pendle_range
        for r, (amm, i) in enumerate(zip(self.pendle, self.pendle_idx, strict=True)):
            dw = float(np.clip(float(w[i]) - float(self.universe.w0[i]), lows[r], highs[r]))
            out[r] = float(amm.cost(dw * nav, float(self.pendle_unit[r]))) / nav
        return out

    def pendle_model_slippage(self, w: np.ndarray) -> np.ndarray:
        """The program's model of it: the interpolation through the knots."""
        nav = self.universe.nav
        return np.array([float(np.interp((float(w[i]) - float(self.universe.w0[i])) * nav, k, c)) / nav
                         for k, c, i in zip(self.pendle_knots, self.pendle_costs, self.pendle_idx, strict=True)])

    def pendle_rows(self, v: Vars) -> tuple[cp.Expression, list[cp.Constraint]]:
        """The Pendle markets' cost (NAV units) as epigraph variables over their lines, and the trade ranges."""
        nav = self.universe.nav
        slopes, intercepts, owner = [], [], []
        for r, (x, c) in enumerate(zip(self.pendle_knots, self.pendle_costs, strict=True)):
            if x.size < 2:  # no trade is allowed (the range is one point): its cost, flat
                b, a = np.zeros(1), c[:1] / nav
            else:
                b = np.diff(c) / np.diff(x)
                a = (c[:-1] - b * x[:-1]) / nav
            slopes.append(b)
            intercepts.append(a)
            owner.append(np.full(b.size, r))
        own = np.concatenate(owner)
        cost = cp.Variable(self.pendle_idx.size, name="pendle_slippage")
        dw = v.w[self.pendle_idx] - np.asarray(self.universe.w0)[self.pendle_idx]
        lows, highs = self.pendle_range
        cons = [cost[own] >= np.concatenate(intercepts) + cp.multiply(np.concatenate(slopes), dw[own]),
                dw >= lows, dw <= highs]
        return cp.sum(cost), cons

    def build(self, v: Vars) -> tuple[cp.Expression, list[cp.Constraint]]:
        """The income of curve markets (NAV units) and the envelope constraints; also branch bounds
        (``lo <= w <= hi`` per curve market, inactive by default) for the repair step. (The AMM
        slippage is the ``slippage`` objective term.)"""
        term: cp.Expression = cp.Constant(0.0)
        cons: list[cp.Constraint] = []
        self.lo = cp.Parameter(self.branch_lo.size, name="branch_floor", value=self.branch_lo.copy())
        self.hi = cp.Parameter(self.branch_hi.size, name="branch_cap", value=self.branch_hi.copy())
        self.link: cp.Constraint | None = None
        if not self.idx.size:
            return term, cons
        m = self.idx.size
        nav = self.universe.nav
        sizes = [k.size for k in self.knots]
        owner = np.repeat(np.arange(m), sizes)
        members = sp.csr_matrix((np.ones(owner.size), (owner, np.arange(owner.size))), shape=(m, owner.size))
        # the hull as convex combinations of its knots: w = sum lam x_k, income = sum lam f_k (one flat
        # vector of knots, a sparse matrix saying which market each belongs to); for a concave hull the
        # best combination uses two adjacent knots, i.e. the piecewise-linear hull itself; better
        # conditioned than one cut per line
        self.lam = cp.Variable(owner.size, nonneg=True, name="knot_weights")
        self.xk = cp.Parameter(owner.size, name="knot_x", value=np.concatenate(self.knots) / nav)
        self.fk = cp.Parameter(owner.size, name="knot_income", value=np.concatenate(self.values) / nav)
        w = v.w[self.idx]
        self.link = w == members @ cp.multiply(self.xk, self.lam)
        cons += [members @ self.lam == 1, self.link, w >= self.lo, w <= self.hi]
        return term + self.fk @ self.lam, cons

    def branch(self, row: int, lo: float, hi: float) -> None:
        """Restrict curve market ``row`` to ``lo <= w <= hi`` (the repair step's branch bounds)."""
        self.branch_lo[row], self.branch_hi[row] = lo, hi
        self.lo.value, self.hi.value = self.branch_lo.copy(), self.branch_hi.copy()

    def refine(self, w: np.ndarray) -> bool:
        """Refine each curve market's knots to full accuracy where the solution ``w`` needs them.

        A market is done when the program's lines beside its holding (on both sides if it sits on a
        knot) are lines of a full-accuracy envelope (consecutive knots of one of its windows). Otherwise
        a window of two of its segments is built at full accuracy (all markets' windows in one pass of
        :func:`~bondfolio.solver.curves.envelopes`) around the holding its dual price would choose
        (the program's knot that maximizes ``income - price * x``; the holding itself without duals),
        and the program gains that window's knots nearest the price's choice (:data:`NEIGHBOURS`
        either side; the whole window without duals). Returns whether any knots changed.

        When every market is done the solution is optimal for full-accuracy envelopes too: on each
        market its lines and such an envelope agree on a neighbourhood of the holding, so the solution
        is a local and (everything concave) the global optimum of that program."""
        if not self.refining or not self.idx.size:
            return False
        nav = self.universe.nav
        x = np.clip(np.asarray(w)[self.idx] * nav, 0.0, np.asarray(self.x_max))
        price = self._prices()
        near = 1e-8 * nav  # a holding this close to a knot sits on it
        rows, lows, highs = [], [], []
        for r, knots in enumerate(self.knots):
            j = int(np.searchsorted(knots, x[r]))
            at = j if j < knots.size and knots[j] - x[r] <= near else (
                j - 1 if j > 0 and x[r] - knots[j - 1] <= near else None)
            beside = [(at - 1, at), (at, at + 1)] if at is not None else [(j - 1, j)]
            if all(self._fine(r, float(knots[i]), float(knots[k])) for i, k in beside if i >= 0 and k < knots.size):
                continue
            if price is not None:
                c = int(np.argmax(self.values[r] - price[r] * knots))
                lo, hi = knots[max(c - 1, 0)], knots[min(c + 1, knots.size - 1)]
            else:
                j = int(np.clip(j, 1, knots.size - 1))
                lo, hi = knots[max(j - 2, 0)], knots[min(j + 1, knots.size - 1)]
            rows.append(r)
            lows.append(float(lo))
            highs.append(float(hi))
        if not rows:
            return False
        fine = envelopes([self.curves[r] for r in rows], highs, self.rel, self.floor, x_min=lows,
                         first=WINDOW_SAMPLES)
        own = np.repeat(np.arange(len(rows)), [e.knots.size for e in fine])
        incomes = np.split(self.cset.income(np.concatenate([e.knots for e in fine]), np.asarray(rows)[own]),
                           np.cumsum([e.knots.size for e in fine])[:-1])
        if price is not None:
            # the most the full-accuracy envelopes could add to the objective (the Lagrangian bound of
            # the price: each market's best income - price * x on its window, over the program's)
            gain = sum(max(float(np.max(f - price[r] * e.knots) - np.max(self.values[r] - price[r] * self.knots[r])),
                           0.0) for r, e, f in zip(rows, fine, incomes, strict=True))
            if gain <= ACCEPT * self.tol_bp / 1e4 * nav:
                return False
        changed = False
        for r, lo, hi, e, f in zip(rows, lows, highs, fine, incomes, strict=True):
            self.windows[r].append((lo, hi, e.knots))
            self.bridges[r] = _merged(self.bridges[r] + e.bridges)
            if price is None:
                pick = slice(None)
            else:
                c = int(np.argmax(f - price[r] * e.knots))
                pick = slice(max(c - NEIGHBOURS, 0), c + NEIGHBOURS + 1)
            points = np.concatenate([self.knots[r], e.knots[pick]])
            values = np.concatenate([self.values[r], f[pick]])
            order = np.argsort(points, kind="stable")
            points, values = points[order], values[order]
            distinct = np.concatenate([[True], np.diff(points) > 0])
            points, values = points[distinct], values[distinct]
            hull = upper_hull(points, values)
            if len(hull) != self.knots[r].size or not np.array_equal(points[hull], self.knots[r]):
                self.knots[r], self.values[r] = points[hull], values[hull]
                changed = True
        return changed

    def _fine(self, r: int, a: float, b: float) -> bool:
        """Whether the program's segment ``[a, b]`` of market ``r`` is a full-accuracy envelope's line."""
        for lo, hi, knots in self.windows[r]:
            if lo <= a and b <= hi:
                k = int(np.searchsorted(knots, a))
                if k + 1 < knots.size and knots[k] == a and knots[k + 1] == b:
                    return True
        return False

    def _prices(self) -> np.ndarray | None:
        """Each curve market's price of holding (income per base-currency unit) in the last solution:
        the dual of the link between its weight and its knots; ``None`` when the solver gave none."""
        if self.link is None or self.link.dual_value is None:
            return None
        return -np.asarray(self.link.dual_value, dtype=float).reshape(-1) / OBJECTIVE_SCALE

    # ------------------------------------------------------------------ exact evaluation
    def exact_income(self, w: np.ndarray) -> np.ndarray:
        """Exact annual income / NAV of each curve market at weights ``w`` (the last answer is kept:
        the repair, the report and the objective all ask at the same weights)."""
        if not self.idx.size:
            return np.zeros(0)
        key = np.asarray(w, dtype=float)[self.idx].tobytes()
        if self._exact is not None and self._exact[0] == key:
            return self._exact[1].copy()
        nav = self.universe.nav
        out = np.array([float(c.income(max(float(w[i]), 0.0) * nav)) / nav for c, i in zip(self.curves, self.idx,
                                                                                           strict=True)])
        self._exact = (key, out)
        return out.copy()

    def model_income(self, w: np.ndarray) -> np.ndarray:
        """The program's model of each curve market's income / NAV: the hull through the knots."""
        if not self.idx.size:
            return np.zeros(0)
        nav = self.universe.nav
        return np.array([float(np.interp(max(float(w[i]), 0.0) * nav, k, f)) / nav
                         for k, f, i in zip(self.knots, self.values, self.idx, strict=True)])

    def on_bridge(self, w: np.ndarray) -> list[tuple[int, float, float, float]]:
        """Curve markets whose holding lies inside a bridge: (row, left end, right end, gap/NAV), largest gap first.
        A holding within the solver's tolerance of an end (1e-9 relative, or 1e-9 of NAV) is at the end."""
        nav = self.universe.nav
        out = []
        exact, model = self.exact_income(w), self.model_income(w)
        for r, (bridges, i) in enumerate(zip(self.bridges, self.idx, strict=True)):
            x = float(w[i]) * nav
            for lo, hi in bridges:
                if lo + max(1e-9 * lo, 1e-9 * nav) < x < hi - max(1e-9 * hi, 1e-9 * nav):
                    out.append((r, lo / nav, hi / nav, float(model[r] - exact[r])))
        return sorted(out, key=lambda item: -item[3])

    def report(self, point: Point, repairs: list[dict[str, Any]]) -> dict[str, Any]:
        """Per market APY before (at current holdings) and after, and the envelope's accuracy."""
        u = self.universe
        nav = u.nav
        markets = []
        knots, values = self.knots, self.values
        for r, (c, e, i) in enumerate(zip(self.curves, self.envelopes, self.idx, strict=True)):
            x = max(float(point.w[i]), 0.0) * nav
            before, after = (float(a) for a in c.apy(np.array([c.held, x])))  # both in one exact call
            markets.append({
                "id": u.ids[i], "model": c.model, "apy_before": before, "apy_after": after,
                "snapshot_apy": float(u.apy[i]), "amount": x, "lines": int(knots[r].size - 1),
                "envelope_bound": e.bound, "bridges": [list(b) for b in self.bridges[r]],
                "model_income": float(np.interp(x, knots[r], values[r])), "exact_income": float(x * after),
            })
        exact = float(np.sum(self.exact_income(point.w)))
        model = float(np.sum(self.model_income(point.w)))
        slip = self.slippage(point.w)
        amm = [{"id": u.ids[i], "model": "amm", "depth": float(u.nav / (2 * c)),
                "trade_amount": float((point.w[i] - u.w0[i]) * nav), "slippage_cost": float(s * nav)}
               for i, c, s in zip(self.amm_idx, self.amm_coef, slip, strict=True)]
        exact_pendle = self.pendle_slippage(point.w)
        model_pendle = self.pendle_model_slippage(point.w)
        for r, i in enumerate(self.pendle_idx):
            dw = float(point.w[i] - u.w0[i])
            amm.append({"id": u.ids[i], "model": "pendle", "trade_amount": dw * nav,
                        "pt_amount": dw * nav / (self.pendle[r].price * float(self.pendle_unit[r])),
                        "slippage_cost": float(exact_pendle[r] * nav), "model_cost": float(model_pendle[r] * nav),
                        "lines": int(self.pendle_knots[r].size - 1), "envelope_bound": float(self.pendle_bound[r])})
        return {"markets": markets, "amm": amm, "slippage_cost_share": float(np.sum(slip) + np.sum(exact_pendle)),
                "tolerance_bp": self.tol_bp, "exact_income_share": exact, "model_income_share": model,
                "model_minus_exact_bp": (model - exact) * 1e4, "repairs": repairs}


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping intervals as their unions, sorted."""
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


class Refinable(Protocol):
    """What :func:`solve_with_impact` needs of a program (:class:`bondfolio.solver.program.Program`)."""

    universe: Universe
    impact: RateImpact | None

    def solve_once(self, reuse: bool = False) -> Solution: ...

    def assemble(self) -> None: ...

    def exact_objective(self, point: Point) -> float: ...


def solve_with_impact(program: Refinable, impact: RateImpact, reuse: bool = False) -> Solution:
    """Solve a program that models rate impact: in large books, add envelope knots around the solution
    until it is optimal at full accuracy (re-solving each time), then repair holdings that landed on a
    non-concave stretch (inside a bridge) by re-solving on each side and keeping the better exact
    objective (each side's solution refined the same way first)."""
    solution = _refined(program, impact, program.solve_once(reuse))
    u = program.universe
    repairs: list[dict[str, Any]] = []
    for _ in range(2 * impact.idx.size):
        bridged = impact.on_bridge(solution.point.w)
        if not bridged:
            break
        row, left, right, gap = bridged[0]
        lo0, hi0 = float(impact.branch_lo[row]), float(impact.branch_hi[row])
        best: tuple[float, Solution, float, float] | None = None
        for lo, hi in ((lo0, min(hi0, left)), (max(lo0, right), hi0)):
            if lo > hi:
                continue
            impact.branch(row, lo, hi)
            try:
                trial = _refined(program, impact, program.solve_once(reuse))
            except InfeasibleError:
                continue
            value = program.exact_objective(trial.point)
            if best is None or value > best[0]:
                best = (value, trial, lo, hi)
        if best is None:  # neither side feasible: keep the bridged answer, reported as such
            impact.branch(row, lo0, hi0)
            break
        _, solution, lo, hi = best
        impact.branch(row, lo, hi)
        if (lo, hi) == (lo0, hi0):  # no narrower branch: the holding cannot leave the bridge
            break
        repairs.append({"id": u.ids[int(impact.idx[row])], "bridge": [left * u.nav, right * u.nav],
                        "gap_bp": gap * 1e4, "kept": "left" if hi <= left else "right"})
    solution.rate_impact = impact.report(solution.point, repairs)
    solution.objective_exact = program.exact_objective(solution.point)
    return solution


def _refined(program: Refinable, impact: RateImpact, solution: Solution) -> Solution:
    """Large books: add the knots the solution lacks (:meth:`RateImpact.refine`) and re-solve, at most
    :data:`MAX_REFINEMENTS` times."""
    for _ in range(MAX_REFINEMENTS):
        if not impact.refine(solution.point.w):
            break
        program.assemble()
        solution = program.solve_once(reuse=False)
    return solution
