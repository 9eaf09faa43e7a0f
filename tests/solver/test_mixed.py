"""Fixed costs and minimum trades: the branch and bound against brute-force enumeration of every trade
pattern (each position bought, sold or left) on 200 random books of 2 to 10 positions.

The brute force is independent of the solver: for a pattern, every position's bounds are fixed
(left: ``w = w0``; bought: ``w >= w0 + m``; sold: ``w <= w0 - m``), and the mean-variance problem with a
diagonal covariance, caps and a budget with idle cash is solved exactly by water-filling
(``w_i = clip((apy_i - lam) / (gamma s_i^2), lo_i, hi_i)`` with ``lam >= 0`` set by bisection so the
deposits fit the budget), all patterns at once in numpy. The best pattern's objective, less the fixed
costs of its traded positions, must equal bondfolio's within 2e-7 (the solver's 1e-9 tolerances
and the bisection's 1e-12, on objectives of about 0.05).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import bondfolio
from tests.factories import opportunity, policy, snapshot

BOOKS = 200
TOL = 2e-7


def _book(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n = 2 + seed % 9
    apy = rng.uniform(0.02, 0.08, n)
    sigma2 = rng.uniform(1e-5, 4e-4, n)
    gamma = float(rng.choice([0.0, 5.0, 40.0]))
    if gamma == 0.0:
        sigma2[:] = 0.0
    caps = rng.uniform(0.25, 1.0, n)
    held = rng.dirichlet(np.ones(n)) * rng.uniform(0.8, 1.0)
    held = np.minimum(held, caps * 0.999)
    nav = 1_000_000.0
    cash = nav * (1 - held.sum())
    return {"n": n, "apy": apy, "sigma2": sigma2, "gamma": gamma, "caps": caps, "w0": held, "nav": nav,
            "cash": cash, "gas": float(rng.choice([0.0, 50.0, 400.0, 3000.0])),
            "min_trade": float(rng.choice([0.0, 5_000.0, 40_000.0]))}


def _brute(b: dict) -> tuple[float, tuple[int, ...]]:
    """Best objective over every pattern (0 left, 1 bought, 2 sold) and the pattern."""
    n, w0, m = b["n"], b["w0"], b["min_trade"] / b["nav"]
    patterns = np.array(list(itertools.product((0, 1, 2), repeat=n)), dtype=int)
    lo = np.where(patterns == 0, w0, np.where(patterns == 1, w0 + m, 0.0))
    hi = np.where(patterns == 0, w0, np.where(patterns == 1, b["caps"], w0 - m))
    hi = np.minimum(hi, b["caps"])
    lo = np.maximum(lo, 0.0)
    if m == 0:  # a "trade" of zero is no trade: bought/sold need a strict move; equal bounds make them left
        lo = np.where(patterns == 1, np.maximum(lo, w0), lo)
    ok = np.all(lo <= hi + 1e-15, axis=1) & (lo.sum(axis=1) <= 1 + 1e-12)
    lo, hi, patterns = lo[ok], hi[ok], patterns[ok]
    apy, s2, g = b["apy"], b["sigma2"], b["gamma"]

    def weights(lam: np.ndarray) -> np.ndarray:
        if g == 0:
            return np.where(apy > lam[:, None], hi, lo)
        return np.clip((apy - lam[:, None]) / (g * s2), lo, hi)

    if g == 0:  # LP: fill by APY order (fractional knapsack), exactly
        w = lo.copy()
        room = 1 - w.sum(axis=1)
        for i in np.argsort(-apy):
            if apy[i] <= 0:
                break
            add = np.minimum(hi[:, i] - w[:, i], room)
            w[:, i] += add
            room -= add
    else:
        a, z = np.zeros(len(lo)), np.full(len(lo), apy.max())
        fits = weights(a).sum(axis=1) <= 1  # lam = 0: the budget does not bind
        for _ in range(200):
            mid = (a + z) / 2
            over = weights(mid).sum(axis=1) > 1
            a, z = np.where(over, mid, a), np.where(over, z, mid)
        lam = np.where(fits, 0.0, z)
        w = weights(lam)
    value = w @ apy - g / 2 * (w**2 @ s2)
    traded = np.abs(w - w0) > 1e-9
    value = value - b["gas"] / b["nav"] * traded.sum(axis=1)
    k = int(np.argmax(value))
    return float(value[k]), tuple(int(t) for t in traded[k])


def _bondfolio(b: dict) -> bondfolio.Decision:
    n = b["n"]
    ids = [f"p{i}" for i in range(n)]
    opps = [opportunity(ids[i], float(b["apy"][i]), protocol=f"proto{i}") for i in range(n)]
    snap = snapshot(opps, cov=np.diag(b["sigma2"]))
    pol = policy({"kind": "budget", "allow_cash": True},
                 {"kind": "max_weight", "limits": {ids[i]: float(b["caps"][i]) for i in range(n)}},
                 nav=None, gamma=b["gamma"], execution={"gas_per_leg": b["gas"], "min_trade": b["min_trade"]})
    hold = {"positions": {ids[i]: float(b["w0"][i] * b["nav"]) for i in range(n)}, "cash": b["cash"]}
    return bondfolio.allocate(snap, pol, hold)


@pytest.mark.parametrize("seed", range(BOOKS))
def test_branch_and_bound_equals_brute_force(seed: int) -> None:
    b = _book(seed)
    best, _ = _brute(b)
    d = _bondfolio(b)
    if b["gas"] or b["min_trade"]:
        assert d.solution.mixed is not None and d.solution.mixed["exact"]
    else:  # nothing fixed, nothing combinatorial: one convex solve, no search
        assert d.solution.mixed is None
    got = d.program.exact_objective(d.solution.point)
    assert got == pytest.approx(best, abs=TOL), (seed, got, best)
    assert d.check_passed  # every trade zero or at least min_trade, checked in numpy
    dw = np.abs(d.weights.to_numpy() - b["w0"])
    m = b["min_trade"] / b["nav"]
    assert np.all((dw <= 1e-7) | (dw >= m - 1e-7))
