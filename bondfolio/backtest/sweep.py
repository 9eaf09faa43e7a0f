"""``bondfolio sweep``: every combination of a grid of policy overrides, one backtest each, on Dask.

The engine is Dask's distributed scheduler: a ``LocalCluster`` of worker processes on this machine by
default (one thread each: the solver is single-threaded Python), or an existing cluster with
``--address tcp://host:8786``. Every combination is one task; results come back as they finish
(progress on standard error) and are sorted by combination, so the table is the same whatever the
number of workers. A task that fails is reported with its error and the sweep goes on.

GRID.toml names overrides by dotted path into the policy, each with its list of values::

    [grid]
    "objective.risk_aversion" = [5, 20, 80]
    "constraints.max_weight.max" = [0.10, 0.15]      # the (single) constraint of that kind; or by label
    "rebalance.min_net_gain" = [0, 100]
    every = ["1d", "7d"]                              # the backtest's cadence

Constraint overrides address ``constraints.<kind or label>.<field>``; the constraint must exist once.
"""

from __future__ import annotations

import itertools
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from bondfolio.errors import InputError
from bondfolio.inputs.base import read_document
from bondfolio.inputs.policy import load_policy

__all__ = ["Combination", "load_grid", "run_sweep"]

BACKTEST_KEYS = ("every",)


@dataclass(frozen=True)
class Combination:
    index: int
    overrides: dict[str, Any]


def load_grid(path: str | Path) -> list[Combination]:
    raw = read_document(path)
    grid = raw.get("grid") if isinstance(raw, dict) else None
    if not isinstance(grid, dict) or not grid:
        raise InputError(f"grid file '{path}' needs a [grid] table of 'path' = [values]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise InputError(f"grid file '{path}': '{key}' must be a non-empty list of values")
    keys = list(grid)
    return [Combination(k, dict(zip(keys, combo, strict=True)))
            for k, combo in enumerate(itertools.product(*(grid[key] for key in keys)))]


def apply_overrides(policy: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the policy data with the grid's overrides (``every`` and other backtest keys left out)."""
    import copy

    out = copy.deepcopy(policy)
    for path, value in overrides.items():
        if path in BACKTEST_KEYS:
            continue
        parts = path.split(".")
        if parts[0] == "constraints":
            if len(parts) != 3:
                raise InputError(f"grid key '{path}': use constraints.<kind or name>.<field>")
            found = [c for c in out.get("constraints", []) if c.get("name") == parts[1] or c.get("kind") == parts[1]]
            if len(found) != 1:
                raise InputError(f"grid key '{path}': the policy has {len(found)} constraints named or of kind "
                                 f"'{parts[1]}': it must have exactly one (give it a name)")
            found[0][parts[2]] = value
            continue
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    load_policy(out)  # every combination must be a valid policy
    return out


def _task(policy: dict[str, Any], combo: Combination, options: dict[str, Any]) -> dict[str, Any]:
    from bondfolio.backtest.engine import backtest

    start = time.perf_counter()
    try:
        pol = apply_overrides(policy, combo.overrides)
        every = combo.overrides.get("every", options["every"])
        result = backtest(pol, options["history"], options["universe"], options["start"], options["end"], every,
                          options["nav"], options["gate"])
        m = result.metrics()["policy"]
        return {"combination": combo.index, **combo.overrides, "realized_apy": m["realized_apy"],
                "volatility": m["volatility"], "max_drawdown": m["max_drawdown"], "turnover": m["turnover"],
                "costs": sum(m["costs"].values()), "rebalances": m["rebalances"], "breach_days": m["breach_days"],
                "final_nav": m["final_nav"], "error": None, "seconds": time.perf_counter() - start}
    except Exception as exc:  # a failed task is a row with its error; the sweep goes on
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return {"combination": combo.index, **combo.overrides, "error": last[:500],
                "seconds": time.perf_counter() - start}


def run_sweep(policy: Any, grid: str | Path, history: str | Path, universe: str | Path, start: date, end: date,
              every: str = "7d", nav: float = 1_000_000.0, gate: bool = False, workers: int = 2,
              address: str | None = None, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One backtest per grid combination on a Dask cluster; the table sorted by combination."""
    from dask.distributed import Client, LocalCluster, as_completed

    pol = load_policy(policy).model_dump(mode="json", by_alias=True)
    combos = load_grid(grid)
    for c in combos:
        apply_overrides(pol, c.overrides)  # fail before starting a cluster
    options = {"history": str(Path(history).resolve()), "universe": str(Path(universe).resolve()), "start": start,
               "end": end, "every": every, "nav": nav, "gate": gate}
    say = progress or (lambda text: print(text, file=sys.stderr))
    cluster = None
    if address is None:
        if workers < 1:
            raise InputError(f"--workers {workers}: at least 1")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=40)
        client = Client(cluster)
    else:
        client = Client(address)
    try:
        futures = [client.submit(_task, pol, c, options, pure=False) for c in combos]
        rows = []
        for k, future in enumerate(as_completed(futures), start=1):
            row = future.result()
            rows.append(row)
            bar = "#" * (20 * k // len(futures))
            say(f"[{bar:<20}] {k}/{len(futures)} combinations" + (f" (#{row['combination']} failed)"
                                                                   if row.get("error") else ""))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return pd.DataFrame(sorted(rows, key=lambda r: r["combination"])).set_index("combination")
