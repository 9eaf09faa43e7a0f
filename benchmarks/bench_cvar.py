"""CVaR in the program: solve time for S scenarios x n opportunities (target: 10,000 x 1,000 < 5 s).

The book is :func:`books.factor_model`'s (20 factors) with a failure model (one source per issuer tag,
plus the score rule per protocol); the policy is fully invested, at most 5 % per position, with a
``cvar`` limit at alpha = 0.95 over the joint failures, +/-200 bp rate shocks, one depeg, the freeze
and S - (explicit) normal samples. The limit is set between the CVaR of the yield-maximizing
allocation and of the least-CVaR one, so it binds. ``allocate`` is timed end to end (scenario
building, compilation, solve, independent check), with each solver named.

Run: ``python benchmarks/bench_cvar.py [--sizes 1000x100,2000x1000,10000x1000] [--solvers HIGHS,CLARABEL]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from books import ASSETS, PROTOCOLS, factor_model

import bondfolio

TARGET_SECONDS = 5.0


def book(scenarios: int, n: int, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    loadings, fcov, spec = factor_model(n, 20, rng)
    loadings *= 0.5
    opps = [{"id": f"o{i:05d}", "protocol": PROTOCOLS[i % len(PROTOCOLS)], "chain": "ethereum",
             "asset": ASSETS[i % len(ASSETS)], "kind": "floating", "apy": float(rng.uniform(0.02, 0.12)),
             "duration": 0.0, "risk_score": float(rng.uniform(0.02, 0.5)), "tier": "core",
             "tags": [f"issuer:{ASSETS[i % len(ASSETS)].lower()}"]} for i in range(n)]
    snap = {"schema": "bondfolio.snapshot/1", "as_of": {"timestamp": "2026-11-20T00:00:00Z"}, "base_currency": "USD",
            "opportunities": opps,
            "risk": {"factors": {"loadings": loadings.tolist(), "factor_covariance": fcov.tolist(),
                                 "specific_variance": spec.tolist()}},
            "failure": {"sources": [{"group": f"issuer:{a.lower()}", "probability": 0.002, "loss_given_failure": 0.2}
                                    for a in ASSETS]}}
    explicit = len(ASSETS) + len(PROTOCOLS) + 2 + 1 + 1
    scen = {"samples": scenarios - explicit, "depegs": [{"asset": "USDe", "drop": 0.1, "probability": 0.005}],
            "stress_probability": 0.002}
    return snap, scen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000x100,2000x1000,10000x1000")
    parser.add_argument("--solvers", default="shape,HIGHS,CLARABEL",
                        help="'shape' is the default order (chosen by the program's shape); CLARABEL alone was "
                             "the default before, and is the baseline of the printed ratio")
    parser.add_argument("--clarabel-max", type=int, default=2000,
                        help="largest scenario count to time Clarabel on (it needs minutes at 10,000 x 1,000)")
    args = parser.parse_args()
    print(f"{'scenarios':>9} {'n':>6} {'solver':>9} {'allocate s':>11} {'solver s':>9} {'x target':>9} "
          f"{'CVaR':>8} {'limit':>8} check")
    for size in args.sizes.split(","):
        s, n = (int(v) for v in size.split("x"))
        snap, scen = book(s, n)
        loose = {"name": "cvar", "nav": 1e8, "constraints": [{"kind": "max_weight", "max": 0.05},
                                                            {"kind": "cvar", "penalty": 1e-6, "scenarios": scen}],
                 "solver": {"order": ["HIGHS", "CLARABEL"]}}
        d0 = bondfolio.allocate(snap, loose)
        top = next(r["value"] for r in d0.constraint_rows if r["kind"] == "cvar")
        limit = 0.6 * top
        times: dict[str, float] = {}
        for solver in args.solvers.split(","):
            if solver == "CLARABEL" and s > args.clarabel_max:
                print(f"{s:>9} {n:>6} {solver:>9} {'skipped (--clarabel-max)':>30}")
                continue
            policy = {"name": "cvar", "nav": 1e8, "constraints": [{"kind": "max_weight", "max": 0.05},
                                                                {"kind": "cvar", "max": limit, "scenarios": scen}]}
            if solver != "shape":
                policy["solver"] = {"order": [solver]}
            start = time.perf_counter()
            d = bondfolio.allocate(snap, policy)
            seconds = time.perf_counter() - start
            cvar = next(r["value"] for r in d.constraint_rows if r["kind"] == "cvar")
            timing = d.to_dict()["timing"]
            used = d.to_dict()["solver"]
            times[solver] = seconds
            label = f"shape:{used['name']}" if solver == "shape" else solver
            print(f"{s:>9} {n:>6} {label:>9} {seconds:>11.2f} {timing['solve_seconds']:>9.2f} "
                  f"{seconds / TARGET_SECONDS:>9.2f} {cvar:>8.4f} {limit:>8.4f} "
                  f"{'passed' if d.check['passed'] else 'FAILED'}", flush=True)
        if "shape" in times and "CLARABEL" in times:
            print(f"{s:>9} {n:>6} default order by shape = {times['shape'] / times['CLARABEL']:.2f}x the old default "
                  "(Clarabel first)")


if __name__ == "__main__":
    main()
