"""Frontier sweep (50 points) against one ``allocate`` solve, with and without conic rows.

Targets (issue 16): 50 points <= 5 x one solve for a policy with linear constraints and quadratic
risk, <= 12 x with conic rows (a volatility cap; the example also has a CVaR limit). "One solve" is
an in-process ``allocate`` of the same inputs (compile + solve + check + metrics), median of repeats
after a warm-up; the frontier is ``bondfolio.audit.frontier.frontier`` with 50 points, median of
repeats as well.

Cases: the bundled example (volatility cap and a 500-scenario CVaR limit) and books of the benchmark
generator (factor risk, every linear constraint family, a volatility cap) at n = 300 and 1,000; each
also without its volatility cap ("QP": linear constraints and quadratic risk only).

Run: ``python benchmarks/bench_frontier.py [--points 50] [--repeats 3] [--sizes 300 1000]``
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
from bondfolio.audit.frontier import frontier
from bondfolio.inputs import load_policy

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "treasury"


def without_volatility_cap(policy: Any) -> Any:
    """The same policy without its ``max_volatility`` rows (linear constraints and quadratic risk)."""
    data = (load_policy(policy) if isinstance(policy, Path) else policy).model_dump(mode="json", by_alias=True)
    data["constraints"] = [c for c in data["constraints"] if c["kind"] != "max_volatility"]
    return load_policy(data)


def median_seconds(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def case(name: str, target: float, snapshot: Any, policy: Any, holdings: Any, points: int, repeats: int) -> None:
    bondfolio.allocate(snapshot, policy, holdings)  # warm-up (imports, caches)
    frontier(snapshot, policy, holdings, points=3)

    def one() -> Any:
        d = bondfolio.allocate(snapshot, policy, holdings)
        _ = d.metrics
        return d

    single, _ = median_seconds(one, repeats)
    sweep, f = median_seconds(lambda: frontier(snapshot, policy, holdings, points=points), repeats)
    ratio = sweep / single
    frame = f.frame
    on_path = int((frame["method"] == "path").sum())
    print(f"{name:<34} one {single:6.3f} s   frontier {sweep:6.3f} s ({len(frame)} points, {on_path} on the path, "
          f"{f.breakpoints} breakpoints, {f.path_backend}; worst check {frame['check_max_violation'].max():.1e})   "
          f"ratio {ratio:5.1f}x   target <= {target:g}x: {'met' if ratio <= target else 'MISSED'}")
    if f.path_unavailable:
        print(f"{'':<34} not on the path: {f.path_unavailable}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[300, 1000])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    snap, pol, hold = EXAMPLE / "snapshot.json", EXAMPLE / "policy.toml", EXAMPLE / "holdings.json"
    case("example (vol cap, CVaR)", 12, snap, pol, hold, args.points, args.repeats)
    case("example, no vol cap (CVaR)", 12, snap, without_volatility_cap(pol), hold, args.points, args.repeats)
    for n in args.sizes:
        snap, pol, hold = book(n)
        case(f"book n={n} (vol cap)", 12, snap, pol, hold, args.points, args.repeats)
        case(f"book n={n} QP (no vol cap)", 5, snap, without_volatility_cap(pol), hold, args.points, args.repeats)


if __name__ == "__main__":
    main()
