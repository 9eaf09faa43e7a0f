"""Rate impact: bondfolio's one convex program against greedy water-filling, and the time at 500 markets.

Books of rate-curve markets (Aave-, Comet-, Morpho-adaptive- and dilution-type curves, pools of 2-10 M,
utilization 40-88 %) receive a NAV large enough that our deposits move their rates. Greedy
water-filling, as today's allocators do it, adds 1 % of NAV at a time to the market whose next chunk
earns the most (on the exact curves). bondfolio solves the book at once. Both are scored on the exact
curves; the gain is in basis points of NAV. Then ``allocate`` is timed on a book of 500 markets
(envelopes built, program solved, answer checked), beside the solver's own time.

Targets (issue 4): bondfolio within 0.01 bp of the optimum (see tests); 500 markets < 0.5 s.

Run: ``python benchmarks/bench_rate_impact.py [--books 5] [--markets 8] [--large 500]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bondfolio
from bondfolio.inputs import load_snapshot
from bondfolio.solver.curves import curve_for


def book(n: int, nav: float, seed: int, utilization: tuple[float, float] = (0.4, 0.88)) -> dict:
    rng = np.random.default_rng(seed)
    opps = []
    for i in range(n):
        model = ["aave", "comet", "adaptive", "dilution"][i % 4]
        supply = float(rng.uniform(2e6, 10e6))
        u = float(rng.uniform(*utilization))
        if model == "aave":
            curve = {"model": "kinked", "applies_to": "borrow", "kink": 0.9, "base": float(rng.uniform(0, 0.01)),
                     "slope_low": float(rng.uniform(0.03, 0.08)), "slope_high": 0.6, "reserve_factor": 0.1,
                     "total_supply": supply, "total_borrow": u * supply}
        elif model == "comet":
            curve = {"model": "kinked", "applies_to": "supply", "kink": 0.85, "base": 0.0,
                     "slope_low": float(rng.uniform(0.03, 0.07)), "slope_high": 0.9, "total_supply": supply,
                     "total_borrow": u * supply}
        elif model == "adaptive":
            curve = {"model": "adaptive", "rate_at_target": float(rng.uniform(0.03, 0.09)), "fee": 0.1,
                     "total_supply": supply, "total_borrow": u * supply}
        else:
            curve = {"model": "dilution", "total_assets": supply}
        opps.append({"id": f"m{i:04d}", "protocol": f"p{i % 7}", "chain": "ethereum", "asset": "USDC",
                     "kind": "floating", "apy": float(rng.uniform(0.02, 0.07)), "duration": 0.0, "risk_score": 0.1,
                     "tier": "core", "rate_curve": curve})
    return {"as_of": {"timestamp": "2026-11-20T00:00:00Z"}, "base_currency": "USD", "opportunities": opps,
            "risk": {"factors": {"loadings": [[0.0]] * n, "factor_covariance": [[1e-4]],
                                 "specific_variance": [0.0] * n}}}


def greedy(curves: list, nav: float, chunks: int = 100) -> float:
    """Water-filling: each 1 % of NAV goes to the market whose next chunk adds the most income."""
    x = np.zeros(len(curves))
    step = nav / chunks
    for _ in range(chunks):
        gains = [float(c.income(xi + step, exact=False) - c.income(xi, exact=False))
                 for c, xi in zip(curves, x, strict=True)]
        x[int(np.argmax(gains))] += step
    return float(sum(float(c.income(xi)) for c, xi in zip(curves, x, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=5)
    parser.add_argument("--markets", type=int, default=8)
    parser.add_argument("--nav", type=float, default=20e6)
    parser.add_argument("--large", type=int, default=500)
    args = parser.parse_args()
    policy = {"name": "impact", "nav": args.nav, "constraints": []}
    for label, utilization in (("utilization 40-88 %", (0.4, 0.88)), ("hot pools, utilization 85-97 %",
                                                                       (0.85, 0.97))):
        print(f"books with {label}:")
        print(f"{'book':>4} {'markets':>7} {'greedy APY':>11} {'bondfolio APY':>14} {'gain bp':>8}")
        gains = []
        for seed in range(args.books):
            snap = load_snapshot(book(args.markets, args.nav, seed, utilization))
            curves = [curve_for(o, 0.0) for o in snap.opportunities]
            g = greedy(curves, args.nav) / args.nav
            d = bondfolio.allocate(snap, policy)
            b = d.metrics["expected_apy"]
            gains.append((b - g) * 1e4)
            print(f"{seed:>4} {args.markets:>7} {g:>11.5%} {b:>14.5%} {gains[-1]:>8.3f}")
        print(f"mean gain over greedy 1 % water-filling: {statistics.mean(gains):.3f} bp (min {min(gains):.3f})\n")

    snap = load_snapshot(book(args.large, args.nav * args.large / args.markets, 99))
    big = {"name": "impact", "nav": args.nav * args.large / args.markets, "constraints": [{"kind": "max_weight",
                                                                                           "max": 0.05}]}
    bondfolio.allocate(load_snapshot(book(20, args.nav, 1)), policy)  # warm-up
    times, solver, envelopes = [], [], []
    for _ in range(3):
        start = time.perf_counter()
        d = bondfolio.allocate(snap, big)
        times.append(time.perf_counter() - start)
        solver.append(sum(a for a in d.to_dict()["timing"]["attempt_seconds"]))
        envelopes.append(d.to_dict()["timing"]["build_seconds"])
    lines = sum(m["lines"] for m in d.to_dict()["rate_impact"]["markets"])
    print(f"{args.large} rate-curve markets: allocate {statistics.median(times):.3f} s (program build incl. "
          f"envelopes {statistics.median(envelopes):.3f} s, solves {statistics.median(solver):.3f} s, "
          f"{lines} envelope knots), target < 0.5 s; status {d.solution.status}, check "
          f"{'passed' if d.check['passed'] else 'FAILED'}")


if __name__ == "__main__":
    main()
