"""Which positions to trade: exact branch and bound over the convex program, a heuristic beyond.

With a ``fixed_cost`` term (:mod:`bondfolio.solver.objective.fixed_cost`) the program holds the
convex relaxation of a mixed-integer problem: flags ``zb_i, zs_i`` in [0, 1] (buy, sell) that are 0
or 1 in any real answer.

- **Exact** (at most :data:`MAX_EXACT` positions whose relaxed flags are not 0): best-first branch and
  bound. Each node fixes some flags by their bounds (Parameters: the node re-solves the compiled DPP
  program, nothing is rebuilt), solves the relaxation, and is pruned when infeasible or when its bound
  (the relaxation's optimum, an upper bound on every answer below it) cannot beat the incumbent by more
  than :data:`GAP`. It branches on the most fractional flag. The answer is optimal to :data:`GAP`
  (relative to NAV) over every trade pattern.
- **Heuristic** beyond that (or past :data:`MAX_NODES` nodes): trade what the relaxation trades, then
  drop traded positions one at a time while that improves the objective. Its gap against the
  relaxation's optimum (an upper bound on the attainable objective) is reported.

Either way the final answer is re-solved with every flag fixed, so it is one convex solve, verified by
the independent check (including the rule that each trade is zero or at least ``min_trade``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bondfolio.constraints.variables import Point
from bondfolio.errors import InfeasibleError
from bondfolio.solver.objective.fixed_cost import INTEGRAL, TRADED, FixedCost
from bondfolio.solver.solve import Solution

__all__ = ["GAP", "MAX_EXACT", "MAX_NODES", "solve_mixed"]

#: Positions with a non-zero relaxed flag up to which the search is exact.
MAX_EXACT = 40
#: Largest number of nodes before the exact search gives up and reports the heuristic's gap.
MAX_NODES = 5000
#: Optimality tolerance of the search, in objective units (APY; 1e-9 is 1e-5 bp of NAV).
GAP = 1e-9


class Mixed(Protocol):
    def solve_once(self, reuse: bool = False) -> Solution: ...

    def exact_objective(self, point: Point) -> float: ...


@dataclass(order=True)
class _Node:
    priority: float
    order: int
    fixes: dict[tuple[int, str], int] = field(compare=False)


def _apply(term: FixedCost, fixes: dict[tuple[int, str], int]) -> None:
    k = term.scope.size
    lo_b, hi_b, lo_s, hi_s = np.zeros(k), np.ones(k), np.zeros(k), np.ones(k)
    for (j, side), value in fixes.items():
        lo, hi = (lo_b, hi_b) if side == "b" else (lo_s, hi_s)
        lo[j] = hi[j] = value
    term.lo_b.value, term.hi_b.value, term.lo_s.value, term.hi_s.value = lo_b, hi_b, lo_s, hi_s


def _fixes_of(term: FixedCost, bought: np.ndarray, sold: np.ndarray) -> dict[tuple[int, str], int]:
    fixes: dict[tuple[int, str], int] = {}
    for j in range(term.scope.size):
        fixes[(j, "b")] = int(bought[j])
        fixes[(j, "s")] = int(sold[j])
    return fixes


def _solve(program: Mixed, term: FixedCost, fixes: dict[tuple[int, str], int]) -> Solution | None:
    _apply(term, fixes)
    try:
        return program.solve_once(reuse=True)
    except InfeasibleError:
        return None


def solve_mixed(program: Mixed, term: FixedCost) -> Solution:
    """Solve a program with a ``fixed_cost`` term (see the module docstring); the returned solution
    carries ``mixed`` (method, nodes, bound, objective, gap, positions traded)."""
    term.enforce = False
    try:
        root = _solve(program, term, {})
        if root is None:
            _apply(term, {})
            return program.solve_once(reuse=True)  # raises the infeasibility with its diagnosis path
        bound = root.objective
        zb, zs = term.flags()
        free = int(np.sum((zb > INTEGRAL) | (zs > INTEGRAL)))
        nodes = 1
        incumbent: tuple[float, dict[tuple[int, str], int]] | None = None
        method = "branch-and-bound"
        if free <= MAX_EXACT:
            heap: list[_Node] = [_Node(-bound, 0, {})]
            solved: dict[int, Solution | None] = {0: root}
            while heap:
                node = heapq.heappop(heap)
                if incumbent is not None and -node.priority <= incumbent[0] + GAP:
                    break  # best-first: no open node can beat the incumbent
                sol = solved.pop(node.order) if node.order in solved else _solve(program, term, node.fixes)
                if node.order:
                    nodes += 1
                if sol is None or (incumbent is not None and sol.objective <= incumbent[0] + GAP):
                    continue
                zb, zs = term.flags()
                frac = np.maximum(np.minimum(zb, 1 - zb), np.minimum(zs, 1 - zs))
                j = int(np.argmax(frac))
                if frac[j] <= INTEGRAL:  # the flags are the pattern (a flag at 1 with m = 0 may move nothing)
                    exact = _exact(program, term, zb > 0.5, zs > 0.5)
                    if exact is not None and (incumbent is None or exact[0] > incumbent[0]):
                        incumbent = exact
                    continue
                side = "b" if min(zb[j], 1 - zb[j]) >= min(zs[j], 1 - zs[j]) else "s"
                for value in (1, 0):
                    heapq.heappush(heap, _Node(-sol.objective, 2 * nodes + value + 1, {**node.fixes, (j, side): value}))
                if nodes >= MAX_NODES:
                    method = "heuristic"
                    break
        else:
            method = "heuristic"
        if incumbent is None or method == "heuristic":
            heuristic = _heuristic(program, term, root)
            if heuristic is not None and (incumbent is None or heuristic[0] > incumbent[0]):
                incumbent = heuristic
        if incumbent is None:
            raise InfeasibleError("no trade pattern found that satisfies the constraints with trades of zero or at "
                                  f"least [execution] min_trade ({term.min_trade:g}): lower min_trade")
        best_value, fixes = incumbent
    finally:
        term.enforce = True
    _apply(term, fixes)
    final = program.solve_once(reuse=True)
    traded = int(sum(fixes.values()))
    final.mixed = {"method": method, "exact": method == "branch-and-bound", "nodes": nodes,
                   "relaxation_bound": bound, "objective": best_value, "relaxation_gap": max(bound - best_value, 0.0),
                   "positions_free": free, "positions_traded": int(traded), "min_trade": term.min_trade}
    return final


def _trades(term: FixedCost, sol: Solution) -> tuple[np.ndarray, np.ndarray]:
    """The trade pattern a solution actually makes (bought, sold over the term's scope)."""
    return term.traded(sol.point, TRADED)


def _exact(program: Mixed, term: FixedCost, bought: np.ndarray, sold: np.ndarray
           ) -> tuple[float, dict[tuple[int, str], int]] | None:
    """The pattern's true objective (every flag fixed, evaluated in numpy), or ``None`` if infeasible."""
    fixes = _fixes_of(term, bought, sold)
    sol = _solve(program, term, fixes)
    if sol is None:
        return None
    return program.exact_objective(sol.point), fixes


def _heuristic(program: Mixed, term: FixedCost, root: Solution) -> tuple[float, dict[tuple[int, str], int]] | None:
    """Trade what the relaxation trades, then drop traded positions one at a time while that improves.

    The relaxation's pattern is read at the check's tolerance; if fixing it is infeasible (moves below
    the tolerance were holding a bound), every position the relaxation touches at all trades."""
    best = None
    _apply(term, {})
    program.solve_once(reuse=True)  # the relaxation again: its flags and trades, for the patterns below
    zb, zs = term.flags()
    candidates = [_trades(term, root), (zb > INTEGRAL, (zs > INTEGRAL) & (zb <= INTEGRAL)),
                  term.traded(root.point, 1e-12)]
    for bought, sold in candidates:
        best = _exact(program, term, bought, sold)
        if best is not None:
            break
    if best is None:
        return None
    improved = True
    while improved:
        improved = False
        for j in np.flatnonzero(bought | sold):
            b2, s2 = bought.copy(), sold.copy()
            b2[j] = s2[j] = False
            trial = _exact(program, term, b2, s2)
            if trial is not None and trial[0] > best[0] + GAP:
                best, bought, sold, improved = trial, b2, s2, True
    return best


def describe(mixed: dict[str, Any]) -> str:
    """One line on how the trade pattern was chosen."""
    proof = "optimal over every trade pattern" if mixed["exact"] else (
        f"heuristic, within {mixed['relaxation_gap'] * 1e4:.4f} bp of the relaxation's bound")
    return f"{mixed['positions_traded']} positions traded ({proof}; {mixed['nodes']} nodes)"
