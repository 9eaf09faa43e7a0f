"""Frontier sweep (50 points over one compiled program) against one ``allocate`` solve.

Target (issue 6): 50 points <= 5 x one solve. "One solve" is an in-process ``allocate`` of the same
inputs (compile + solve + check + metrics), median of repeats after a warm-up; the frontier is
``bondfolio.audit.frontier.frontier`` with 50 points (one DPP compilation, then parameter updates).

Cases: the bundled example (with its 500-scenario CVaR limit), and books of the benchmark
generator (factor risk, every linear constraint family, no CVaR) at n = 300 and 1,000.

Run: ``python benchmarks/bench_frontier.py [--points 50] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from books import book

import bondfolio
from bondfolio.audit.frontier import frontier

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "treasury"


def case(name: str, snapshot: object, policy: object, holdings: object, points: int, repeats: int) -> None:
    bondfolio.allocate(snapshot, policy, holdings)  # warm-up (imports, caches)
    ones = []
    solver = []
    for _ in range(repeats):
        start = time.perf_counter()
        d = bondfolio.allocate(snapshot, policy, holdings)
        _ = d.metrics
        ones.append(time.perf_counter() - start)
        solver.append(d.solution.solver_seconds or float("nan"))
    one = statistics.median(ones)
    start = time.perf_counter()
    f = frontier(snapshot, policy, holdings, points=points)
    sweep = time.perf_counter() - start
    ratio = sweep / one
    print(f"{name:<28} one solve {one:7.3f} s (solver {statistics.median(solver):.3f} s)   {len(f.frame)} points "
          f"{sweep:7.3f} s ({sweep / len(f.frame):.3f} s/point)   ratio {ratio:5.1f}x   target <= 5x: "
          f"{'met' if ratio <= 5 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[300, 1000])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    case("example treasury (CVaR)", EXAMPLE / "snapshot.json", EXAMPLE / "policy.toml", EXAMPLE / "holdings.json",
         args.points, args.repeats)
    for n in args.sizes:
        snap, pol, hold = book(n)
        case(f"book n={n} (factor risk)", snap, pol, hold, args.points, args.repeats)


if __name__ == "__main__":
    main()
