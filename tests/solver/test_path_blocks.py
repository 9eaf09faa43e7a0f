"""SolutionPath's two KKT backends: the block-structured one (``_BlockKkt``) against the generic
sparse LU (``_Kkt``), and which one a book of the benchmarks' shape gets.

Both backends solve the same regularized KKT matrix of the same working set, so along the same
path they must cross the same breakpoints and report the same points: weights within 1e-9
(fractions of NAV) and objectives within 1e-9 relative. Measured on these seeds: within 4e-15.
(On some books the sparse LU's bordered updates are the less accurate of the two at large risk
aversions: seed 13 of this generator, weights 2.7e-8 apart with the LU's stationarity residual at
6e-9 and the blocks' at 3e-13; both within the KKT tolerance.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bondfolio.solver.path as path_module
from bondfolio.inputs import load_policy
from bondfolio.solver.api import load_inputs
from bondfolio.solver.path import KKT_TOLERANCE, SolutionPath
from bondfolio.solver.program import Program
from tests.audit.test_frontier_path import book

GAMMAS = [0.0, *np.geomspace(0.05, 5000.0, 16).tolist()]
TOL = 1e-9


def _path(inputs: Any, generic: bool, monkeypatch: pytest.MonkeyPatch) -> SolutionPath:
    program = Program(inputs.universe, inputs.policy, with_risk=True)
    with monkeypatch.context() as m:
        if generic:
            m.setattr(path_module, "block_structure", lambda H, Ae, Ai: None)
        return SolutionPath.from_program(program)


@pytest.mark.parametrize(("seed", "vol_cap"), [(11, None), (12, None), (14, None), (11, 1.1)])
def test_block_backend_crosses_the_same_breakpoints_and_points_as_the_sparse_lu(
        seed: int, vol_cap: float | None, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = load_inputs(*book(60, seed=seed, vol_cap=vol_cap))
    blocks, generic = _path(inputs, False, monkeypatch), _path(inputs, True, monkeypatch)
    assert blocks.backend == "blocks" and generic.backend == "sparse LU"
    # up from the start, then back across it (the path retraces its breakpoints the other way)
    got = {**blocks.points(GAMMAS, start=20.0), **blocks.points([3.0, 300.0], start=20.0)}
    ref = {**generic.points(GAMMAS, start=20.0), **generic.points([3.0, 300.0], start=20.0)}
    assert blocks.steps == generic.steps >= 20
    assert blocks.fallback is None
    for gamma, p in ref.items():
        q = got[gamma]
        assert q.breakpoints == p.breakpoints and q.capped == p.capped, gamma
        assert float(np.abs(q.point.w - p.point.w).max()) <= TOL, (gamma, float(np.abs(q.point.w - p.point.w).max()))
        assert abs(q.point.cash - p.point.cash) <= TOL
        assert abs(q.objective - p.objective) <= TOL * max(abs(p.objective), 1e-2), gamma
        assert max(v for k, v in q.kkt.items() if k != "lp_gap") <= KKT_TOLERANCE
        assert q.backend == "blocks"


def _bench_book(n: int) -> tuple[Any, Any, Any]:
    """The benchmarks' book (benchmarks/books.py) without its volatility cap, as bench_frontier's QP rows."""
    where = Path(__file__).resolve().parents[2] / "benchmarks" / "books.py"
    spec = importlib.util.spec_from_file_location("bench_books", where)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_books", module)
    spec.loader.exec_module(module)
    snap, pol, hold = module.book(n)
    data = pol.model_dump(mode="json", by_alias=True)
    data["constraints"] = [c for c in data["constraints"] if c["kind"] != "max_volatility"]
    return snap, load_policy(data), hold


def test_the_benchmarks_book_gets_the_block_backend() -> None:
    """bench_frontier's speed rests on this choice: each weight with its trade-size variable is a
    block (bounds and the two kink rows local), and only the budget, the 20 factor rows and the
    group, duration, liquidity, turnover and exposure rows couple them."""
    n = 120
    inputs = load_inputs(*_bench_book(n))
    path = SolutionPath.from_program(Program(inputs.universe, inputs.policy, with_risk=True))
    assert path.backend == "blocks"
    kkt = path.kkt
    assert isinstance(kkt, path_module._BlockKkt)
    assert kkt.B == 2  # a weight and its trade size
    assert kkt.blk.coupling.size <= 40  # budget + 20 factor rows + the group-type rows
    assert kkt.local.size >= 4 * n  # two bounds and two kink rows per weight
    p = path.points([5.0, 50.0], start=20.0)
    assert path.backend == "blocks" and all(pt.backend == "blocks" for pt in p.values())


def test_a_failed_block_falls_back_to_the_sparse_lu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A block that cannot be inverted hands over to the generic backend and says so; the points
    stay the generic path's."""
    inputs = load_inputs(*book(40, seed=12, vol_cap=None))
    generic = _path(inputs, True, monkeypatch)
    ref = generic.points(GAMMAS, start=20.0)
    blocks = _path(inputs, False, monkeypatch)
    calls = {"n": 0}
    original = path_module._BlockKkt._refresh

    def flaky(self: Any, j: int, slot: int, on: bool) -> bool:
        calls["n"] += 1
        return False if calls["n"] == 5 else original(self, j, slot, on)

    monkeypatch.setattr(path_module._BlockKkt, "_refresh", flaky)
    got = blocks.points(GAMMAS, start=20.0)
    assert calls["n"] == 5 and blocks.backend.startswith("blocks, then sparse LU (a singular block")
    assert blocks.steps == generic.steps
    for gamma, p in ref.items():
        assert float(np.abs(got[gamma].point.w - p.point.w).max()) <= TOL
