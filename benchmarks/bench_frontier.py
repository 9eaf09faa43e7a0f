"""Frontier sweep (50 points) against one ``allocate`` solve, with and without conic rows.

Targets (issue 16): 50 points <= 5 x one solve for a policy with linear constraints and quadratic
risk, <= 12 x with conic rows (a volatility cap; the example also has a CVaR limit). "One solve" is
an in-process ``allocate`` of the same inputs (compile + solve + check + metrics), median of repeats
after a warm-up; the frontier is ``bondfolio.audit.frontier.frontier`` with 50 points, median of
repeats as well.

Cases: the bundled example (volatility cap and a 500-scenario CVaR limit) and books of the benchmark
generator (factor risk, every linear constraint family, a volatility cap) at n = 300 and 1,000; each
also without its volatility cap ("QP": linear constraints and quadratic risk only).

The path's block backend runs its breakpoint step compiled when numba is installed
(``bondfolio.solver.path_kernels``; the frontier's ``path_backend`` says ``blocks (compiled)``);
``--compare-numpy`` also times each sweep on its numpy code, interleaved with the others.

Run: ``python benchmarks/bench_frontier.py [--points 50] [--repeats 3] [--sizes 300 1000] [--compare-numpy]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from books import book

import bondfolio
import bondfolio.solver.path as path_module
from bondfolio.audit.frontier import frontier
from bondfolio.inputs import load_policy

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "treasury"


def without_volatility_cap(policy: Any) -> Any:
    """The same policy without its ``max_volatility`` rows (linear constraints and quadratic risk)."""
    data = (load_policy(policy) if isinstance(policy, Path) else policy).model_dump(mode="json", by_alias=True)
    data["constraints"] = [c for c in data["constraints"] if c["kind"] != "max_volatility"]
    return load_policy(data)


def timed(fn: Any) -> tuple[float, float, Any]:
    """``(wall seconds, CPU seconds, result)`` of one call (CPU time: the process's, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def numpy_block_step(fn: Any) -> Any:
    """``fn()`` with the path's block backend on its numpy code (``bondfolio.solver.path.COMPILED``)."""
    saved, path_module.COMPILED = path_module.COMPILED, False
    try:
        return fn()
    finally:
        path_module.COMPILED = saved


def case(name: str, target: float, snapshot: Any, policy: Any, holdings: Any, points: int, repeats: int,
         compare: bool) -> None:
    bondfolio.allocate(snapshot, policy, holdings)  # warm-up (imports, caches, the path's compiled kernels)
    frontier(snapshot, policy, holdings, points=3)

    def one() -> Any:
        d = bondfolio.allocate(snapshot, policy, holdings)
        _ = d.metrics
        return d

    def sweep() -> Any:
        return frontier(snapshot, policy, holdings, points=points)

    # interleaved repeats (one solve, the sweep, the sweep on numpy's block step), medians of each
    runs: dict[str, list[tuple[float, float]]] = {"one": [], "sweep": [], "numpy": []}
    f = None
    for _ in range(repeats):
        wall, cpu, _ = timed(one)
        runs["one"].append((wall, cpu))
        wall, cpu, f = timed(sweep)
        runs["sweep"].append((wall, cpu))
        if compare:
            wall, cpu, _ = timed(lambda: numpy_block_step(sweep))
            runs["numpy"].append((wall, cpu))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items() if v}
    single, swept = med["one"][0], med["sweep"][0]
    ratio = swept / single
    frame = f.frame
    on_path = int((frame["method"] == "path").sum())
    print(f"{name:<34} one {single:6.3f} s   frontier {swept:6.3f} s ({len(frame)} points, {on_path} on the path, "
          f"{f.breakpoints} breakpoints, {f.path_backend}; worst check {frame['check_max_violation'].max():.1e})   "
          f"ratio {ratio:5.1f}x   target <= {target:g}x: {'met' if ratio <= target else 'MISSED'}")
    if compare:
        (nw, nc), (sc, oc) = med["numpy"], (med["sweep"][1], med["one"][1])
        print(f"{'':<34} numpy block step: frontier {nw:6.3f} s, ratio {nw / single:5.1f}x; CPU seconds: one {oc:.3f}, "
              f"frontier {sc:.3f} ({sc / oc:.1f}x), numpy's {nc:.3f} ({nc / oc:.1f}x)")
    if f.path_unavailable:
        print(f"{'':<34} not on the path: {f.path_unavailable}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[300, 1000])
    parser.add_argument("--compare-numpy", action="store_true",
                        help="also time each sweep with the path's block step on numpy (no numba), interleaved")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    snap, pol, hold = EXAMPLE / "snapshot.json", EXAMPLE / "policy.toml", EXAMPLE / "holdings.json"
    how = (args.points, args.repeats, args.compare_numpy)
    case("example (vol cap, CVaR)", 12, snap, pol, hold, *how)
    case("example, no vol cap (CVaR)", 12, snap, without_volatility_cap(pol), hold, *how)
    for n in args.sizes:
        snap, pol, hold = book(n)
        case(f"book n={n} (vol cap)", 12, snap, pol, hold, *how)
        case(f"book n={n} QP (no vol cap)", 5, snap, without_volatility_cap(pol), hold, *how)


if __name__ == "__main__":
    main()
