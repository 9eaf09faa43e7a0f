"""In-process ``allocate`` time at n = 100, 1,000, 10,000 with factor-form risk and every constraint family.

Prints, per size: total ``allocate`` time (median of repeats, inputs already validated), the solver's
own time as Clarabel reports it, their ratio, and the number of constraint rows checked. Then the
peak memory of a fresh process doing one n = 10,000 allocation.

Targets (issue 2): n = 10,000 under 1 s; total <= 1.5 x solver time; peak memory < 500 MB.

Run: ``python benchmarks/bench_allocate.py [--sizes 100 1000 10000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from books import book

import bondfolio


def measure(n: int, repeats: int) -> dict[str, float]:
    snapshot, policy, holdings = book(n)
    totals, solver, rows = [], [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        decision = bondfolio.allocate(snapshot, policy, holdings)
        _ = decision.metrics  # reported numbers are part of the job
        totals.append(time.perf_counter() - start)
        solver.append(decision.solution.solver_seconds or float("nan"))
        rows = decision.check["rows_checked"]
        assert decision.check["passed"]
    total, solve = statistics.median(totals), statistics.median(solver)
    return {"n": n, "total": total, "solver": solve, "ratio": total / solve, "rows": rows}


def peak_memory_mb(n: int) -> float:
    here = str(Path(__file__).resolve().parent)
    code = (
        f"import resource, sys; sys.path.insert(0, {here!r})\n"
        "import bondfolio; from books import book\n"
        f"s, p, h = book({n}); d = bondfolio.allocate(s, p, h); d.metrics\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-n", type=int, default=10000)
    args = parser.parse_args()
    bondfolio.allocate(*book(50))  # warm-up: imports and first-call overheads are not per-solve costs
    print(f"{'n':>7} {'allocate s':>11} {'solver s':>9} {'ratio':>6} {'rows':>7}   targets: n=10k < 1 s, ratio <= 1.5")
    for n in args.sizes:
        r = measure(n, args.repeats)
        print(f"{r['n']:>7} {r['total']:>11.3f} {r['solver']:>9.3f} {r['ratio']:>6.2f} {r['rows']:>7}")
    mem = peak_memory_mb(args.memory_n)
    print(f"peak memory, one allocation at n = {args.memory_n}: {mem:.0f} MB (target < 500 MB; includes the "
          "interpreter and libraries)")


if __name__ == "__main__":
    main()
