"""bondfolio against PyPortfolioOpt on the same long-only mean-variance book.

The book: maximize ``mu'w - (gamma/2) w'Sigma w`` subject to ``sum w = 1``, ``0 <= w <= 1``, with
``Sigma = B F B' + diag(d)`` (k = 20 factors). PyPortfolioOpt (``EfficientFrontier(mu, Sigma,
weight_bounds=(0, 1)).max_quadratic_utility(risk_aversion=gamma)``, same objective convention) gets the
dense matrix, as it requires. bondfolio solves it twice: from the factor form, and from the same dense
matrix. Both are timed (median of ``--repeats`` runs) from in-memory inputs to weights (bondfolio
includes its checks and the Decision); the two answers' objectives are compared.

Targets (issue 2): factor form >= 20x faster than PyPortfolioOpt; dense input no slower.

Run: ``pip install -e '.[bench]' && python benchmarks/bench_pypfopt.py [--sizes 1000 2000]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from books import factor_model

import bondfolio
from bondfolio.inputs import load_policy, load_snapshot

GAMMA = 20.0


def inputs(n: int, dense: bool) -> tuple[object, object, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    mu = rng.uniform(0.02, 0.12, n)
    loadings, fcov, spec = factor_model(n, 20, rng)
    cov = loadings @ fcov @ loadings.T + np.diag(spec)
    risk = ({"covariance": cov} if dense else
            {"factors": {"loadings": loadings, "factor_covariance": fcov, "specific_variance": spec}})
    opps = [{"id": f"o{i}", "protocol": "p", "chain": "c", "asset": "USDC", "kind": "floating", "apy": float(mu[i]),
             "duration": 0.0, "risk_score": 0.1, "tier": "core"} for i in range(n)]
    snap = load_snapshot({"as_of": {"timestamp": "2026-11-20T00:00:00Z"}, "base_currency": "USD",
                          "opportunities": opps, "risk": risk})
    pol = load_policy({"name": "mv", "nav": 1.0, "objective": {"risk_aversion": GAMMA},
                       "constraints": [{"kind": "max_weight", "max": 1.0}]})
    return snap, pol, mu, cov


def utility(w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> float:
    return float(mu @ w - GAMMA / 2 * w @ cov @ w)


def run_pypfopt(mu: np.ndarray, cov: np.ndarray) -> tuple[float, np.ndarray, str]:
    from pypfopt import EfficientFrontier

    start = time.perf_counter()
    ef = EfficientFrontier(mu, cov, weight_bounds=(0, 1))
    weights = ef.max_quadratic_utility(risk_aversion=GAMMA)
    seconds = time.perf_counter() - start
    return seconds, np.array([weights[i] for i in range(len(mu))]), ef._opt.solver_stats.solver_name


def run_bondfolio(snap: object, pol: object) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    decision = bondfolio.allocate(snap, pol)  # type: ignore[arg-type]
    _ = decision.metrics
    return time.perf_counter() - start, decision.weights.to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is shown")
    args = parser.parse_args()

    def median_of(run: Callable[[], tuple[float, np.ndarray]]) -> tuple[float, np.ndarray]:
        results = [run() for _ in range(args.repeats)]
        return statistics.median(r[0] for r in results), results[-1][1]

    snap, pol, *_ = inputs(50, dense=False)
    bondfolio.allocate(snap, pol)  # type: ignore[arg-type]  # warm-up
    print(f"{'n':>6} {'PyPortfolioOpt s':>17} {'bondfolio factor s':>19} {'speed-up':>9} {'bondfolio dense s':>18} "
          f"{'speed-up':>9} {'utility gap (bf - pypfopt)':>27}")
    for n in args.sizes:
        snap_f, pol_f, mu, cov = inputs(n, dense=False)
        snap_d, pol_d, _, _ = inputs(n, dense=True)
        solver = run_pypfopt(mu, cov)[2]
        t_pp, w_pp = median_of(lambda: run_pypfopt(mu, cov)[:2])  # noqa: B023
        t_f, w_f = median_of(lambda: run_bondfolio(snap_f, pol_f))  # noqa: B023
        t_d, w_d = median_of(lambda: run_bondfolio(snap_d, pol_d))  # noqa: B023
        gap = utility(w_f, mu, cov) - utility(w_pp, mu, cov)
        gap_d = utility(w_d, mu, cov) - utility(w_pp, mu, cov)
        print(f"{n:>6} {t_pp:>17.3f} {t_f:>19.3f} {t_pp / t_f:>8.1f}x {t_d:>18.3f} {t_pp / t_d:>8.1f}x "
              f"{gap:>+13.2e} / {gap_d:>+10.2e}")
    print(f"PyPortfolioOpt's solver: {solver}. Targets: factor form >= 20x faster; dense no slower (speed-up >= 1). "
          "A positive utility gap means bondfolio's answer is better.")


if __name__ == "__main__":
    main()
