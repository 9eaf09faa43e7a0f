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
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import bondfolio.solver
import bondfolio.solver.path as path_module
from bondfolio.inputs import load_policy
from bondfolio.solver.api import load_inputs
from bondfolio.solver.path import KKT_TOLERANCE, SolutionPath
from bondfolio.solver.program import Program
from tests.audit.test_frontier_path import book

GAMMAS = [0.0, *np.geomspace(0.05, 5000.0, 16).tolist()]
TOL = 1e-9


def _path(inputs: Any, generic: bool, monkeypatch: pytest.MonkeyPatch, compiled: bool = True) -> SolutionPath:
    program = Program(inputs.universe, inputs.policy, with_risk=True)
    with monkeypatch.context() as m:
        if generic:
            m.setattr(path_module, "block_structure", lambda H, Ae, Ai: None)
        m.setattr(path_module, "COMPILED", compiled)
        m.setattr(path_module, "COMPILED_MIN_BLOCKS", 0)  # these books are small: compiled whatever their size
        return SolutionPath.from_program(program)


def _blocks_name(blocks: int | None = None) -> str:
    """The block backend's name for a path of ``blocks`` blocks (None: made by :func:`_path`, compiled
    whatever its size): compiled where numba is installed (path_kernels) and the path is large enough
    (COMPILED_MIN_BLOCKS), else numpy's."""
    big = blocks is None or blocks >= path_module.COMPILED_MIN_BLOCKS
    return "blocks (compiled)" if path_module._kernels() is not None and big else "blocks"


@pytest.mark.parametrize(("seed", "vol_cap"), [(11, None), (12, None), (14, None), (11, 1.1)])
def test_block_backend_crosses_the_same_breakpoints_and_points_as_the_sparse_lu(
        seed: int, vol_cap: float | None, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = load_inputs(*book(60, seed=seed, vol_cap=vol_cap))
    blocks, generic = _path(inputs, False, monkeypatch), _path(inputs, True, monkeypatch)
    assert blocks.backend == _blocks_name() and generic.backend == "sparse LU"
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
        assert q.backend == _blocks_name()


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
    kkt = path.kkt
    assert isinstance(kkt, path_module._BlockKkt)
    # a path this small runs the numpy step (numba's import would cost more than it saves)
    assert kkt.blk.var.shape[0] < path_module.COMPILED_MIN_BLOCKS and kkt.kernels is None
    assert path.backend == _blocks_name(kkt.blk.var.shape[0]) == "blocks"
    assert kkt.B == 2  # a weight and its trade size
    assert kkt.blk.coupling.size <= 40  # budget + 20 factor rows + the group-type rows
    assert kkt.local.size >= 4 * n  # two bounds and two kink rows per weight
    p = path.points([5.0, 50.0], start=20.0)
    assert path.backend == "blocks" and all(pt.backend == "blocks" for pt in p.values())


@pytest.mark.parametrize("compiled", [False, True])
def test_a_failed_block_falls_back_to_the_sparse_lu(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block that cannot be inverted hands over to the generic backend and says so; the points
    stay the generic path's. With either implementation of the block step (numpy's ``_refresh`` or
    the compiled ``change_local``)."""
    if compiled:
        pytest.importorskip("numba")
    inputs = load_inputs(*book(40, seed=12, vol_cap=None))
    generic = _path(inputs, True, monkeypatch)
    ref = generic.points(GAMMAS, start=20.0)
    blocks = _path(inputs, False, monkeypatch, compiled=compiled)
    calls = {"n": 0}
    kkt = blocks.kkt
    assert isinstance(kkt, path_module._BlockKkt) and (kkt.kernels is not None) == compiled
    if compiled:
        kernels = kkt.kernels

        def flaky_kernel(*args: Any) -> bool:
            calls["n"] += 1
            return False if calls["n"] == 5 else bool(kernels.change_local(*args))

        kkt.kernels = SimpleNamespace(**{**{k: getattr(kernels, k) for k in kernels.__all__},
                                         "change_local": flaky_kernel})
    else:
        original = path_module._BlockKkt._refresh

        def flaky(self: Any, j: int, slot: int, on: bool) -> bool:
            calls["n"] += 1
            return False if calls["n"] == 5 else original(self, j, slot, on)

        monkeypatch.setattr(path_module._BlockKkt, "_refresh", flaky)
    got = blocks.points(GAMMAS, start=20.0)
    name = "blocks (compiled)" if compiled else "blocks"
    assert calls["n"] == 5 and blocks.backend.startswith(f"{name}, then sparse LU (a singular block")
    assert blocks.steps == generic.steps
    for gamma, p in ref.items():
        assert float(np.abs(got[gamma].point.w - p.point.w).max()) <= TOL


@pytest.mark.parametrize(("seed", "vol_cap", "n"), [(11, None, 60), (14, None, 60), (11, 1.1, 60), (None, None, 150)])
def test_the_compiled_block_step_crosses_the_same_breakpoints_and_points_as_numpy(
        seed: int | None, vol_cap: float | None, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """path_kernels' compiled breakpoint step against _BlockKkt's numpy code, on the same path (seed
    None: the benchmarks' book). The same arithmetic in another order of summation, so the same
    breakpoints and the same points to rounding: weights within 1e-12 (fractions of NAV), objectives
    within 1e-12 relative, every point's own KKT check met. Measured: within 2e-15."""
    pytest.importorskip("numba")
    inputs = load_inputs(*(_bench_book(n) if seed is None else book(n, seed=seed, vol_cap=vol_cap)))
    compiled, plain = _path(inputs, False, monkeypatch), _path(inputs, False, monkeypatch, compiled=False)
    assert compiled.backend == "blocks (compiled)" and plain.backend == "blocks"
    got = {**compiled.points(GAMMAS, start=20.0), **compiled.points([3.0, 300.0], start=20.0)}
    ref = {**plain.points(GAMMAS, start=20.0), **plain.points([3.0, 300.0], start=20.0)}
    assert compiled.steps == plain.steps >= 20
    assert compiled.fallback is None and plain.fallback is None
    for gamma, p in ref.items():
        q = got[gamma]
        assert q.breakpoints == p.breakpoints and q.capped == p.capped, gamma
        assert float(np.abs(q.point.w - p.point.w).max()) <= 1e-12, (gamma, float(np.abs(q.point.w - p.point.w).max()))
        assert abs(q.point.cash - p.point.cash) <= 1e-12
        assert abs(q.objective - p.objective) <= 1e-12 * max(abs(p.objective), 1e-2), gamma
        assert max(v for k, v in q.kkt.items() if k != "lp_gap") <= KKT_TOLERANCE
        assert q.backend == "blocks (compiled)" and p.backend == "blocks"


def test_without_numba_the_block_backend_runs_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """numba is optional: where it cannot be imported the block backend says ``"blocks"`` and runs its
    numpy code (the points as the generic backend's, within the tolerance of the first test)."""
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delitem(sys.modules, "bondfolio.solver.path_kernels", raising=False)
    monkeypatch.delattr(bondfolio.solver, "path_kernels", raising=False)
    monkeypatch.setattr(path_module, "_kernels_module", None)
    inputs = load_inputs(*book(40, seed=12, vol_cap=None))
    blocks = _path(inputs, False, monkeypatch)
    assert blocks.backend == "blocks" and isinstance(blocks.kkt, path_module._BlockKkt) and blocks.kkt.kernels is None
    ref = _path(inputs, True, monkeypatch).points([5.0, 50.0], start=20.0)
    for gamma, p in blocks.points([5.0, 50.0], start=20.0).items():
        assert p.backend == "blocks"
        assert float(np.abs(p.point.w - ref[gamma].point.w).max()) <= TOL
