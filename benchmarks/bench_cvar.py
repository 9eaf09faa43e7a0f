"""CVaR in the program: solve time for S scenarios x n opportunities (targets: 10,000 x 1,000 < 5 s,
2,000 x 300 < 0.3 s), aggregated scenarios against the full Rockafellar-Uryasev LP.

The book is :func:`books.factor_model`'s (20 factors) with a failure model (one source per issuer tag,
plus the score rule per protocol); the policy is fully invested, at most 5 % per position, with a
``cvar`` limit at alpha = 0.95 over the joint failures, +/-200 bp rate shocks, one depeg, the freeze
and S - (explicit) normal samples. The limit is set between the CVaR of the yield-maximizing
allocation and of the least-CVaR one, so it binds. ``allocate`` is timed end to end (scenario
building, compilation, solve, independent check), with each solver named, for each ``method`` of the
constraint: ``aggregated`` (the scenarios kept out of the compiled program: bondfolio/solver/cvar_cuts.py,
with its master solves and final groups) and ``full`` (the LP with a variable and a row per scenario).
Each size ends with the ratio of the two and the difference of their objectives.

Run: ``python benchmarks/bench_cvar.py [--sizes 2000x300,10000x1000] [--solvers shape,HIGHS,CLARABEL]
[--methods aggregated,full]``
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
    parser.add_argument("--sizes", default="1000x100,2000x300,10000x1000")
    parser.add_argument("--solvers", default="shape",
                        help="'shape' is the default order (chosen by the program's shape); or solver names, e.g. "
                             "shape,HIGHS,CLARABEL")
    parser.add_argument("--methods", default="aggregated,full", help="the cvar constraint's method(s) to time")
    parser.add_argument("--clarabel-max", type=int, default=2000,
                        help="largest scenario count to time Clarabel on with the full LP (minutes at 10,000 x 1,000)")
    args = parser.parse_args()
    print(f"{'scenarios':>9} {'n':>6} {'method':>10} {'solver':>14} {'allocate s':>11} {'solve s':>8} "
          f"{'x target':>9} {'objective':>14} {'CVaR':>8} {'limit':>8} {'masters':>7} {'groups':>6} check")
    for size in args.sizes.split(","):
        s, n = (int(v) for v in size.split("x"))
        target = 0.3 if s * n <= 2000 * 300 else TARGET_SECONDS
        snap, scen = book(s, n)
        loose = {"name": "cvar", "nav": 1e8, "constraints": [{"kind": "max_weight", "max": 0.05},
                                                            {"kind": "cvar", "penalty": 1e-6, "scenarios": scen}],
                 "solver": {"order": ["HIGHS", "CLARABEL"]}}
        d0 = bondfolio.allocate(snap, loose)
        top = next(r["value"] for r in d0.constraint_rows if r["kind"] == "cvar")
        limit = 0.6 * top
        times: dict[tuple[str, str], tuple[float, float]] = {}
        for solver in args.solvers.split(","):
            for method in args.methods.split(","):
                if solver == "CLARABEL" and method == "full" and s > args.clarabel_max:
                    print(f"{s:>9} {n:>6} {method:>10} {solver:>14} {'skipped (--clarabel-max)':>30}")
                    continue
                policy = {"name": "cvar", "nav": 1e8,
                          "constraints": [{"kind": "max_weight", "max": 0.05},
                                          {"kind": "cvar", "max": limit, "method": method, "scenarios": scen}]}
                if solver != "shape":
                    policy["solver"] = {"order": [solver]}
                start = time.perf_counter()
                d = bondfolio.allocate(snap, policy)
                seconds = time.perf_counter() - start
                cvar = next(r["value"] for r in d.constraint_rows if r["kind"] == "cvar")
                record = d.to_dict()
                (how,) = record["solver"]["cvar"]
                objective = d.metrics["objective"]
                times[(solver, method)] = (seconds, objective)
                label = f"shape:{record['solver']['name']}" if solver == "shape" else solver
                solve_seconds = record["timing"]["solve_seconds"]
                print(f"{s:>9} {n:>6} {method:>10} {label:>14} {seconds:>11.3f} {solve_seconds:>8.3f} "
                      f"{seconds / target:>9.2f} {objective:>14.10f} {cvar:>8.4f} {limit:>8.4f} "
                      f"{how.get('master_solves', '-'):>7} {how.get('groups', '-'):>6} "
                      f"{'passed' if d.check['passed'] else 'FAILED'}", flush=True)
            if (solver, "aggregated") in times and (solver, "full") in times:
                (fast, a), (slow, b) = times[(solver, "aggregated")], times[(solver, "full")]
                print(f"{s:>9} {n:>6} {solver}: full LP / aggregated = {slow / fast:.1f}x; objectives differ by "
                      f"{abs(a - b):.1e}", flush=True)


if __name__ == "__main__":
    main()
