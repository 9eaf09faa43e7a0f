"""A 365-day daily backtest of the 30-market example policy (target: under 20 s), against the same
backtest rebuilding the program every day (the baseline the target forbids).

    pip install -e . && python benchmarks/bench_backtest.py [--days 365]

The policy is examples/backtest/policy.toml without its [execution] and [rebalance] tables (fixed
costs make every step a branch and bound: measured separately with --with-fixed-costs). Prints the
total time, the time per step (every strategy) and the ratio to the rebuild-every-day baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from datetime import date, timedelta
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bondfolio.backtest import backtest, engine  # noqa: E402
from bondfolio.inputs.store import HistoryStore, import_aave_daily  # noqa: E402
from bondfolio.solver.program import Program  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--with-fixed-costs", action="store_true")
    args = parser.parse_args()
    policy = tomllib.loads((ROOT / "examples" / "backtest" / "policy.toml").read_text())
    if not args.with_fixed_costs:
        policy.pop("execution")
        policy.pop("rebalance")
    start = date(2025, 8, 21)
    end = start + timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "history.duckdb"
        with HistoryStore(store) as s:
            import_aave_daily(ROOT / "examples" / "backtest" / "data" / "aave_v3_stables_daily.csv", s)
        universe = ROOT / "examples" / "backtest" / "universe.toml"
        t = time.perf_counter()
        result = backtest(policy, store, universe, start, end, "1d", 10_000_000.0)
        reused = time.perf_counter() - t
        print(f"{args.days}-day daily backtest, {len(result.ids)} markets, 4 strategies: {reused:.2f} s "
              f"({result.seconds_per_step * 1000:.1f} ms per step, {result.rebuilds} program builds); "
              f"target < 20 s: {'met' if reused < 20 else 'MISSED'}")

        def fresh(program: Program | None, u: object, pol: object) -> tuple[Program, int]:
            return Program(u, pol), 1  # type: ignore[arg-type]

        with mock.patch.object(engine, "_program", fresh):
            t = time.perf_counter()
            baseline = backtest(policy, store, universe, start, end, "1d", 10_000_000.0)
            rebuilt = time.perf_counter() - t
        print(f"baseline (a new program every day, {baseline.rebuilds} builds): {rebuilt:.2f} s; "
              f"reused / baseline = {reused / rebuilt:.2f}")


if __name__ == "__main__":
    main()
