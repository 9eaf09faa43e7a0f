"""Thousands of random books, verified independently; prints the counts of each outcome.

CI runs 300 feasible and 100 infeasible books (tests/solver/test_properties.py); this script runs the same
generators at any size, with fresh random books each run unless ``--seed`` is given:

    pip install -e '.[dev]' && python benchmarks/bench_random_books.py --feasible 2000 --infeasible 500

A feasible book counts as right when the independent check passes (max violation <= 1e-7), the objective
equals an independently written cvxpy model's to 1e-7, and the numpy objective equals the solver's. An
infeasible book counts as right when ``allocate`` raises ``InfeasibleError`` with a diagnosis whose named
conflict appears in the message. Anything else is counted by what happened and the script exits 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.strategies import SearchStrategy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bondfolio
from bondfolio.errors import CheckFailedError, InfeasibleError
from tests.solver.test_properties import OBJ_TOL, books, independent_optimum, infeasible_books


def feasible_outcome(book: tuple[dict, dict, dict, dict]) -> str:
    snap, pol, holdings, raw = book
    try:
        d = bondfolio.allocate(snap, pol, holdings)
    except InfeasibleError:
        return "wrongly infeasible"
    except CheckFailedError:
        return "check failed (raised)"
    except Exception as exc:
        return f"other exception: {type(exc).__name__}"
    if not d.check["passed"] or d.check["max_violation"] > 1e-7:
        return "check failed"
    if abs(d.metrics["objective"] - independent_optimum(raw)) > OBJ_TOL:
        return "objective differs from the independent model"
    if abs(d.metrics["objective"] - d.metrics["solver_objective"]) > OBJ_TOL:
        return "numpy and solver objectives differ"
    return "right"


def infeasible_outcome(book: tuple[dict, dict]) -> str:
    snap, pol = book
    try:
        bondfolio.allocate(snap, pol)
    except InfeasibleError as exc:
        d = exc.diagnosis
        if d is None:
            return "infeasible without a diagnosis"
        if d.conflict and not all(label in str(exc) for label in d.conflict):
            return "conflict not in the message"
        return "right"
    except Exception as exc:
        return f"other exception: {type(exc).__name__}"
    return "allocated an infeasible book"


def run(strategy: SearchStrategy[Any], outcome: Callable[[Any], str], count: int,
        at: int | None) -> tuple[Counter[str], float]:
    tally: Counter[str] = Counter()

    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate],
              database=None)
    @given(strategy)
    def each(book: Any) -> None:
        tally[outcome(book)] += 1

    if at is not None:
        each = seed(at)(each)
    start = time.perf_counter()
    each()
    return tally, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feasible", type=int, default=2000, help="feasible books to draw (default 2000)")
    parser.add_argument("--infeasible", type=int, default=500, help="infeasible books to draw (default 500)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed, to draw the same books again")
    args = parser.parse_args()
    wrong = 0
    for name, strategy, outcome, count in (("feasible", books(), feasible_outcome, args.feasible),
                                           ("infeasible", infeasible_books(), infeasible_outcome, args.infeasible)):
        tally, seconds = run(strategy, outcome, count, args.seed)
        total = sum(tally.values())
        print(f"{name} books: {total} in {seconds:.1f} s ({1e3 * seconds / max(total, 1):.0f} ms a book)")
        for what, k in tally.most_common():
            print(f"  {what:<48} {k}")
        wrong += total - tally["right"]
    print("all right" if wrong == 0 else f"{wrong} books wrong")
    sys.exit(0 if wrong == 0 else 1)


if __name__ == "__main__":
    main()
