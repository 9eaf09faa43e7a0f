"""Loading and records at n = 10,000 (issue 16): load_snapshot against json.load, the inputs digest, the record.

Writes a 10,000-opportunity snapshot (factor risk, k = 20) the way ``bondfolio snapshot`` writes one, then
prints, each the median of ``--repeats`` runs:

- ``json.load`` of the file: the baseline, the least any loader must do;
- ``load_snapshot`` of the file (read, hostile-input guards, validation) and its ratio to ``json.load``
  (target <= 1.5), the two timed in turn;
- the inputs digest (:func:`~bondfolio.solver.decision.inputs_digest`: the sha256 of each canonical input
  and of the three together) from fresh models, target <= 0.15 s;
- the record write: the sealed record's JSON text (``DecisionRecord.to_json``, what ``allocate --out``
  writes), target <= 0.15 s;
- for context, the record build (``Decision.record``: the digest, the typed record and its seal) and
  ``load_decision`` of the written record (hash verified), which have no target.

Run: ``python benchmarks/bench_io.py [--n 10000] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from books import book

import bondfolio
from bondfolio.inputs import load_holdings, load_policy, load_snapshot
from bondfolio.solver.decision import inputs_digest
from bondfolio.solver.record import load_decision


def seconds(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_seconds(run: Callable[[], Any], repeats: int) -> float:
    return statistics.median(seconds(run) for _ in range(repeats))


def paired_medians(first: Callable[[], Any], second: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Medians of two runs timed in turn, so a busy shared machine slows both alike."""
    times = [(seconds(first), seconds(second)) for _ in range(repeats)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    snapshot, policy, holdings = book(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.json"
        path.write_text(snapshot.model_dump_json(indent=1, by_alias=True, exclude_none=True) + "\n")
        size_mb = path.stat().st_size / 1e6

        def json_load() -> Any:
            with path.open(encoding="utf-8") as handle:
                return json.load(handle)

        base, load = paired_medians(json_load, lambda: load_snapshot(path), args.repeats)

        # the digest from models no digest has seen yet (nothing cached from an earlier run)
        fresh = [(load_snapshot(path), load_policy(policy.model_dump(mode="json", by_alias=True)),
                  load_holdings(holdings.model_dump(mode="json", by_alias=True))) for _ in range(args.repeats)]
        digest_times = []
        for s, p, h in fresh:
            start = time.perf_counter()
            inputs_digest(s, p, h)
            digest_times.append(time.perf_counter() - start)
        digest = statistics.median(digest_times)
        del fresh

        decision = bondfolio.allocate(snapshot, policy, holdings)
        record = decision.record
        build = median_seconds(lambda: dataclasses.replace(decision).record, args.repeats)
        write = median_seconds(record.to_json, args.repeats)
        out = Path(tmp) / "decision.json"
        out.write_text(record.to_json(), encoding="utf-8")
        record_mb = out.stat().st_size / 1e6
        verify = median_seconds(lambda: load_decision(out), args.repeats)

    print(f"n = {args.n}: snapshot file {size_mb:.1f} MB, record {record_mb:.1f} MB; medians of {args.repeats}")
    print(f"{'step':<34} {'seconds':>8} {'ratio':>6}   target")
    print(f"{'json.load (baseline)':<34} {base:>8.3f} {1:>6.2f}")
    print(f"{'load_snapshot':<34} {load:>8.3f} {load / base:>6.2f}   <= 1.5 x json.load "
          f"({'met' if load <= 1.5 * base else 'NOT met'})")
    print(f"{'inputs digest':<34} {digest:>8.3f} {'':>6}   <= 0.15 s ({'met' if digest <= 0.15 else 'NOT met'})")
    print(f"{'record write (to_json)':<34} {write:>8.3f} {'':>6}   <= 0.15 s ({'met' if write <= 0.15 else 'NOT met'})")
    print(f"{'record build and seal':<34} {build:>8.3f} {'':>6}   (no target)")
    print(f"{'load_decision (verified)':<34} {verify:>8.3f} {'':>6}   (no target)")


if __name__ == "__main__":
    main()
