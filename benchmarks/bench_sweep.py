"""A 32-combination sweep on 2 Dask workers against the same 32 backtests run serially in one process
(target: <= 0.6x the serial time).

    pip install -e . && python benchmarks/bench_sweep.py

BLAS is held to one thread everywhere (the serial run would otherwise use both cores in numpy's
linear algebra, and the comparison would measure thread contention); each task is a one-year weekly
backtest of the 30-market example policy, so the cluster's start (included) is a small part of it.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bondfolio.backtest.sweep import _task, load_grid, run_sweep  # noqa: E402
from bondfolio.inputs.policy import load_policy  # noqa: E402
from bondfolio.inputs.store import HistoryStore, import_aave_daily  # noqa: E402

GRID = """[grid]
"objective.risk_aversion" = [5.0, 10.0, 20.0, 40.0]
"constraints.max_weight.max" = [0.10, 0.15, 0.20, 0.30]
every = ["2d", "7d"]
"""


def main() -> None:
    policy = tomllib.loads((ROOT / "examples" / "backtest" / "policy.toml").read_text())
    policy.pop("execution")
    policy.pop("rebalance")
    start, end = date(2025, 8, 21), date(2026, 8, 21)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "history.duckdb"
        with HistoryStore(store) as s:
            import_aave_daily(ROOT / "examples" / "backtest" / "data" / "aave_v3_stables_daily.csv", s)
        grid = Path(tmp) / "grid.toml"
        grid.write_text(GRID)
        universe = ROOT / "examples" / "backtest" / "universe.toml"
        options = {"history": str(store), "universe": str(universe), "start": start, "end": end, "every": "7d",
                   "nav": 10_000_000.0, "gate": False}
        pol = load_policy(policy).model_dump(mode="json", by_alias=True)
        t = time.perf_counter()
        serial = [_task(pol, c, options) for c in load_grid(grid)]
        serial_s = time.perf_counter() - t
        t = time.perf_counter()
        table = run_sweep(policy, grid, store, universe, start, end, "7d", 10_000_000.0, workers=2,
                          progress=lambda _: None)
        dask_s = time.perf_counter() - t
    same = all(abs(r["final_nav"] - table.loc[r["combination"], "final_nav"]) == 0 for r in serial)
    ratio = dask_s / serial_s
    print(f"32 combinations: serial {serial_s:.2f} s, Dask on 2 workers {dask_s:.2f} s (cluster start included); "
          f"ratio {ratio:.2f} (target <= 0.6: {'met' if ratio <= 0.6 else 'MISSED'}); same numbers: {same}")


if __name__ == "__main__":
    main()
