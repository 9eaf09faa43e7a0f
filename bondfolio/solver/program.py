"""One convex program per policy: variables, objective, every constraint family; solve and verify.

The objective (see :mod:`bondfolio.inputs.policy`)::

    maximize  apy' w + cash_apy * c - (gamma / 2) w' Sigma w - cost' |w - w0|

is multiplied by :data:`OBJECTIVE_SCALE` inside the solver, so APY-sized numbers (0.05) are not lost in
solvers' absolute tolerances; every reported objective value and dual is scaled back.

Numbers that change between runs (yields, risk aversion, costs, bounds, current weights, risk
loadings) are cvxpy Parameters, so the problem is DPP-compliant: :meth:`Program.update` plus
:meth:`Program.solve` with ``reuse=True`` re-solves without recompiling. A one-off solve skips the DPP
compilation (``ignore_dpp``), which is several times faster the first time.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from bondfolio.constraints.base import Compiled, Constraint, ParamSet, Point, RowResult, Rows, Vars
from bondfolio.constraints.budget import Budget
from bondfolio.constraints.weights import LongOnly, NoNewDeposits
from bondfolio.errors import CheckFailedError, InfeasibleError, InputError, SolverError, UnboundedError
from bondfolio.inputs.policy import Policy
from bondfolio.inputs.snapshot import Opportunity
from bondfolio.inputs.universe import Universe
from bondfolio.solver.rate_impact import RateImpact

__all__ = ["OBJECTIVE_SCALE", "SOLVER_OPTIONS", "Attempt", "Program", "Solution", "effective_constraints"]

#: Factor applied to the objective inside the solver (1e4: the solver sees basis points).
OBJECTIVE_SCALE = 1e4

#: Rounds of local envelope refinement for large rate-impact books (see rate_impact.REFINE_ABOVE).
MAX_REFINEMENTS = 4

#: Options passed to each solver. Tight tolerances: weights are checked to 1e-7 of NAV afterwards.
SOLVER_OPTIONS: dict[str, dict[str, Any]] = {
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 200},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
    "ECOS": {"abstol": 1e-9, "reltol": 1e-9, "feastol": 1e-9},
    "OSQP": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 200_000, "polishing": True},
}


def effective_constraints(policy: Policy, policy_opportunities: Sequence[Opportunity] = ()) -> list[Constraint]:
    """The policy's constraints plus what every program has: ``long_only`` always, ``budget`` (fully
    invested) when the policy gives none, and ``no_new_deposits`` when an opportunity is not
    depositable. Raises if a policy gives two budgets."""
    constraints: list[Constraint] = []
    for spec in policy.constraints:
        if not isinstance(spec, Constraint):
            raise InputError(f"policy '{policy.name}': constraint {spec.kind!r} is not a compiled constraint family")
        constraints.append(spec)
    budgets = [c for c in constraints if isinstance(c, Budget)]
    if len(budgets) > 1:
        raise InputError(f"policy '{policy.name}' has {len(budgets)} budget constraints: keep one")
    if not budgets:
        constraints.insert(0, Budget())
    constraints.insert(1, LongOnly())
    if any(not o.depositable for o in policy_opportunities):
        constraints.insert(2, NoNewDeposits())
    labels = [c.label for c in constraints]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise InputError(f"policy '{policy.name}': constraints {dupes} appear twice: drop the copy or give each a "
                         "distinct 'name'")
    return constraints


@dataclass(frozen=True)
class Attempt:
    """One solver tried: its name, what it returned and how long it took."""

    solver: str
    status: str
    accepted: bool
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"solver": self.solver, "status": self.status, "accepted": self.accepted,
                "seconds": self.seconds, "detail": self.detail}


@dataclass
class Solution:
    """A verified allocation and everything needed to report it."""

    point: Point
    solver: str
    status: str
    inaccurate: bool
    objective: float
    """Objective value (APY units) as the solver reported it, scaled back."""
    attempts: list[Attempt]
    checks: list[RowResult]
    duals: list[np.ndarray]
    compile_seconds: float
    solve_seconds: float
    solver_seconds: float | None
    """The solver's own time, as it reports it (None if it does not)."""
    options: dict[str, Any] = field(default_factory=dict)
    rate_impact: dict[str, Any] | None = None
    """Per-market APY before and after, envelope accuracy and repairs (when rate impact is modelled)."""
    objective_exact: float | None = None
    """The objective evaluated on the exact curves (when rate impact is modelled)."""

    @property
    def max_violation(self) -> float:
        return max((r.violation for r in self.checks), default=0.0)


class Program:
    """The convex program of one policy on one universe.

    Parameters
    ----------
    universe
        Snapshot arrays, NAV and current weights.
    policy
        Objective, constraints and solver settings.
    with_risk
        Build the risk term even when ``risk_aversion`` is 0 (for sweeps that will raise it);
        by default only when needed.
    """

    def __init__(self, universe: Universe, policy: Policy, with_risk: bool | None = None) -> None:
        start = time.perf_counter()
        self.universe = universe
        self.policy = policy
        self.constraints = effective_constraints(policy, universe.snapshot.opportunities)
        u = universe
        v = Vars(u)
        self.vars = v
        rows = []
        for c in self.constraints:
            rows.append(c.resolve_checked(u))
        for c, r in zip(self.constraints, rows, strict=True):
            implied = c.implies_within_available(r)
            if implied is not None:
                v.within_available[implied] = True
        self.fold = BoundFold(self.constraints, rows, v)
        self.compiled: list[Compiled] = []
        for i, (c, r) in enumerate(zip(self.constraints, rows, strict=True)):
            if c.bound_side is not None:
                self.compiled.append(self.fold.compiled(i))
            else:
                self.compiled.append(c.compile(u, v, r))

        obj = policy.objective
        upper = np.full(u.n, np.inf)
        upper[self.fold.ub_idx] = np.asarray(self.fold.ub.value)
        self.impact = RateImpact(u, obj.rate_impact_tolerance_bp, upper) if obj.rate_impact else None
        if self.impact is not None and not self.impact.active:
            self.impact = None
        self.mu = cp.Parameter(u.n, name="apy", value=self._linear_apy(u))
        self.cash_apy = cp.Parameter(name="cash_apy", value=obj.cash_apy)
        self.gamma = cp.Parameter(name="risk_aversion", nonneg=True, value=obj.risk_aversion)
        self.costs = trading_costs(u, policy)
        self.cost = cp.Parameter(u.n, name="trading_cost", nonneg=True, value=self.costs)
        expr = self.mu @ v.w + self.cash_apy * v.cash
        self.has_risk = bool(obj.risk_aversion > 0 if with_risk is None else with_risk)
        if self.has_risk:
            expr = expr - v.risk_penalty(self.gamma)
        self.has_costs = bool(np.any(self.costs > 0))
        if self.has_costs:
            expr = expr - self.cost @ v.trade_size
        carry = u.numeric("carry")[v.hedge_idx]
        self.carry = cp.Parameter(carry.size, name="hedge_carry", nonneg=True, value=carry)
        if np.any(carry > 0):
            expr = expr - self.carry @ v.hedge_size
        for comp in self.compiled:
            weight = comp.constraint.penalty_weight()
            if weight > 0:
                assert comp.expr is not None
                expr = expr - weight * comp.expr[0]
        self._base_expr = expr
        self._assemble()
        self.build_seconds = time.perf_counter() - start

    def _assemble(self) -> None:
        """The cvxpy problem from the base objective and constraints plus the rate-impact pieces
        (rebuilt when local refinement changes the envelopes' knots)."""
        v = self.vars
        expr = self._base_expr
        curve_cons: list[cp.Constraint] = []
        if self.impact is not None:  # before collecting definitions: it may create the trade variable
            income, curve_cons = self.impact.build(v)
            expr = expr + income
        cvx = [*v.definitions, *self.fold.cvx, *curve_cons]
        for comp in self.compiled:
            cvx.extend(comp.cvx)
        self.problem = cp.Problem(cp.Maximize(OBJECTIVE_SCALE * expr), cvx)

    def _linear_apy(self, u: Universe) -> np.ndarray:
        """The linear yield per unit weight: ``apy`` less the expected failure loss times
        ``failure_aversion``; where the rate-impact model gives the income, only the loss part."""
        mu = np.array(u.apy, dtype=float)
        if self.impact is not None:
            mu[self.impact.idx] = 0.0
        return mu - self.policy.objective.failure_aversion * np.asarray(u.expected_loss_rate)

    def exact_objective(self, point: Point) -> float:
        """The objective at ``point`` in numpy, with the exact rate curves (APY units)."""
        u, obj = self.universe, self.policy.objective
        value = float(self._linear_apy(u) @ point.w + obj.cash_apy * point.cash)
        if self.impact is not None:
            value += float(np.sum(self.impact.exact_income(point.w)))
            value -= float(np.sum(self.impact.slippage(point.w)))
        value -= obj.risk_aversion / 2 * u.variance(point.w) if self.has_risk else 0.0
        value -= float(self.costs @ np.abs(point.w - u.w0))
        value -= float(u.numeric("carry") @ np.abs(point.w))
        return value - self.penalties(point)

    def penalties(self, point: Point) -> float:
        """Sum of the soft constraints' penalties at ``point`` (numpy), APY units."""
        total = 0.0
        for comp in self.compiled:
            weight = comp.constraint.penalty_weight()
            if weight > 0:
                total += weight * float(comp.constraint.evaluate(comp.rows, point, self.universe)[0])
        return total

    # ------------------------------------------------------------------ re-solves
    def update(self, universe: Universe | None = None, risk_aversion: float | None = None) -> None:
        """Assign new numbers without recompiling: a new universe of the same shape and structure,
        and/or a new risk aversion."""
        if universe is not None:
            if universe.ids != self.universe.ids:
                raise InputError("the new snapshot's opportunities differ from the compiled ones: build a new Program")
            self.universe = universe
            if self.impact is not None:
                raise InputError("this program models rate impact, whose envelopes depend on the snapshot: "
                                 "build a new Program for a new snapshot")
            self.vars.update(universe)
            self.fold.update(universe)
            for comp in self.compiled:
                if comp.dual_source is None:
                    comp.constraint.update(comp, universe)
            self.mu.value = self._linear_apy(universe)
            self.costs = trading_costs(universe, self.policy)
            self.cost.value = self.costs
            self.carry.value = universe.numeric("carry")[self.vars.hedge_idx]
        if risk_aversion is not None:
            if risk_aversion > 0 and not self.has_risk:
                raise InputError("this program was built without a risk term: build it with with_risk=True")
            self.gamma.value = risk_aversion
            self.vars.set_risk_aversion()

    def set_row_bound(self, k: int, row: int, lower: float, upper: float) -> tuple[float, float]:
        """Set the bounds of row ``row`` of compiled family ``k`` (an equality row takes ``lower``);
        returns the old ``(lower, upper)`` so a caller can restore them. Re-solve with ``reuse=True``."""
        comp = self.compiled[k]
        lo, hi = comp.rows.lower.copy(), comp.rows.upper.copy()
        old = (float(lo[row]), float(hi[row]))
        lo[row], hi[row] = (lower, lower) if comp.equality else (lower, upper)
        comp.set_bounds(lo, hi)
        if comp.dual_source is not None:
            self.fold.rows[k] = comp.rows
            self.fold.refresh()
        return old

    @property
    def risk_aversion(self) -> float:
        return float(np.asarray(self.gamma.value))

    # ------------------------------------------------------------------ solving
    def solve(self, reuse: bool = False) -> Solution:
        """Solve, then (with rate impact) repair holdings that landed on a non-concave stretch of an
        income curve; see :mod:`bondfolio.solver.rate_impact`. Raises as :meth:`solve_once`."""
        solution = self.solve_once(reuse)
        if self.impact is None:
            return solution
        impact = self.impact
        for _ in range(MAX_REFINEMENTS):  # large books: full accuracy around the solution, then re-solve
            if not impact.refine(solution.point.w):
                break
            self._assemble()
            solution = self.solve_once(reuse=False)
        repairs: list[dict[str, Any]] = []
        for _ in range(2 * impact.idx.size):
            bridged = impact.on_bridge(solution.point.w)
            if not bridged:
                break
            row, left, right, gap = bridged[0]
            lo0, hi0 = float(impact.lo.value[row]), float(impact.hi.value[row])  # type: ignore[index]
            best: tuple[float, Solution, float, float] | None = None
            for lo, hi in ((lo0, min(hi0, left)), (max(lo0, right), hi0)):
                if lo > hi:
                    continue
                self._branch(row, lo, hi)
                try:
                    trial = self.solve_once(reuse)
                except InfeasibleError:
                    continue
                value = self.exact_objective(trial.point)
                if best is None or value > best[0]:
                    best = (value, trial, lo, hi)
            if best is None:  # neither side feasible: keep the bridged answer, reported as such
                self._branch(row, lo0, hi0)
                break
            _, solution, lo, hi = best
            self._branch(row, lo, hi)
            repairs.append({"id": self.universe.ids[int(impact.idx[row])], "bridge": [left * self.universe.nav,
                            right * self.universe.nav], "gap_bp": gap * 1e4,
                            "kept": "left" if hi <= left else "right"})
        solution.rate_impact = impact.report(solution.point, repairs)
        solution.objective_exact = self.exact_objective(solution.point)
        return solution

    def _branch(self, row: int, lo: float, hi: float) -> None:
        assert self.impact is not None
        lows = np.array(self.impact.lo.value)
        highs = np.array(self.impact.hi.value)
        lows[row], highs[row] = lo, hi
        self.impact.lo.value, self.impact.hi.value = lows, highs

    def solve_once(self, reuse: bool = False) -> Solution:
        """Solve with each solver of the policy's order until one gives an allocation that passes
        the independent check.

        ``reuse=True`` compiles with DPP (slower once, then parameter updates re-solve fast).

        Raises
        ------
        InfeasibleError
            A solver proved that no allocation satisfies the constraints.
        UnboundedError
            The objective is unbounded (some position has no bound).
        CheckFailedError
            Solvers reported success but every answer violated a constraint beyond tolerance.
        SolverError
            No solver in the order produced an answer.
        """
        settings = self.policy.solver
        attempts: list[Attempt] = []
        installed = _installed_solvers()
        failed_check: list[RowResult] = []
        infeasible_inaccurate = False
        for name in settings.order:
            if name not in installed:
                attempts.append(Attempt(name, "not_installed", False, 0.0, "solver is not installed"))
                continue
            options = SOLVER_OPTIONS.get(name, {})
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():  # an inaccurate status is recorded and checked, not printed
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    self.problem.solve(solver=name, ignore_dpp=not reuse, **options)
            except cp.error.SolverError as exc:
                attempts.append(Attempt(name, "error", False, time.perf_counter() - start, str(exc)[:300]))
                continue
            seconds = time.perf_counter() - start
            status = str(self.problem.status)
            if status == cp.INFEASIBLE:
                attempts.append(Attempt(name, status, False, seconds))
                raise InfeasibleError(self._infeasible_message(name), policy=self.policy.name)
            if status == cp.UNBOUNDED:
                attempts.append(Attempt(name, status, False, seconds))
                raise UnboundedError(self._unbounded_message(), [a.to_dict() for a in attempts])
            if status == cp.INFEASIBLE_INACCURATE:
                infeasible_inaccurate = True
                attempts.append(Attempt(name, status, False, seconds, "inaccurate certificate: trying the next solver"))
                continue
            if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or self.vars.w.value is None:
                attempts.append(Attempt(name, status, False, seconds, "no solution returned"))
                continue
            margin = float(np.asarray(self.vars.margin.value)) if self.vars.has_margin else 0.0
            point = Point(np.array(self.vars.w.value, dtype=float), float(np.asarray(self.vars.cash.value)), margin)
            checks = self.check(point)
            worst = max((r.violation for r in checks), default=0.0)
            if worst > settings.check_tolerance:
                failed_check = checks
                attempts.append(Attempt(name, status, False, seconds,
                                        f"independent check failed: largest violation {worst:.3g} > "
                                        f"{settings.check_tolerance:g}"))
                continue
            attempts.append(Attempt(name, status, True, seconds))
            stats = self.problem.solver_stats
            return Solution(
                point=point,
                solver=name,
                status=status,
                inaccurate=status == cp.OPTIMAL_INACCURATE,
                objective=float(self.problem.value) / OBJECTIVE_SCALE,
                attempts=attempts,
                checks=checks,
                duals=[comp.duals(OBJECTIVE_SCALE) for comp in self.compiled],
                compile_seconds=self.build_seconds,
                solve_seconds=seconds,
                solver_seconds=None if stats is None or stats.solve_time is None else float(stats.solve_time),
                options={"ignore_dpp": not reuse, "objective_scale": OBJECTIVE_SCALE, **options},
            )
        summary = "; ".join(f"{a.solver}: {a.status}" + (f" ({a.detail})" if a.detail else "") for a in attempts)
        if failed_check:
            worst_row = max(failed_check, key=lambda r: r.violation)
            raise CheckFailedError(
                f"policy '{self.policy.name}': every solver's answer violated a constraint; worst: "
                f"{worst_row.constraint}[{worst_row.row}] = {worst_row.value:.10g} outside "
                f"[{worst_row.lower:.10g}, {worst_row.upper:.10g}]. Attempts: {summary}",
                [a.to_dict() for a in attempts],
            )
        if infeasible_inaccurate:
            raise InfeasibleError(
                f"policy '{self.policy.name}' appears infeasible (solvers returned inaccurate infeasibility "
                f"certificates: {summary}): loosen the tightest constraints",
                policy=self.policy.name,
            )
        raise SolverError(f"policy '{self.policy.name}': no solver produced an allocation. Attempts: {summary}",
                          [a.to_dict() for a in attempts])

    def check(self, point: Point) -> list[RowResult]:
        """Every row of every constraint evaluated on ``point`` with numpy (no solver involved)."""
        results: list[RowResult] = []
        for comp in self.compiled:
            results.extend(comp.constraint.check(point, self.universe, comp.rows))
        return results

    def _infeasible_message(self, solver: str) -> str:
        kinds = ", ".join(c.label for c in self.constraints)
        return (f"policy '{self.policy.name}' is infeasible: no allocation satisfies all of its constraints "
                f"together ({kinds}); {solver} returned a certificate of infeasibility. Loosen the tightest "
                "bounds or widen the opportunity set.")

    def _unbounded_message(self) -> str:
        free = [self.universe.ids[i] for i in np.flatnonzero(self.universe.hedge)]
        hint = f" (hedges {free[:5]} have no bound: add max_weight/min_weight for them)" if free else ""
        return (f"policy '{self.policy.name}' is unbounded: the objective can grow without limit{hint}; bound "
                "every position or add risk aversion")


class BoundFold:
    """All simple per-position bounds of a program as one upper and one lower bound vector.

    Families with ``bound_side`` (``max_weight``, ``min_weight``, ``long_only``, ``liquidity_share``,
    ``tvl_share``) each bound single weights. The solver sees only ``w[i] <= ub[i]`` and
    ``w[i] >= lb[i]`` with the tightest bound per position (1 row per bounded position and side,
    instead of one per family). Each position's dual goes to the family whose bound is the tightest
    (the first in policy order on ties); the others get 0. The independent check evaluates every
    family's own rows.
    """

    def __init__(self, constraints: list[Constraint], rows: list[Rows], v: Vars) -> None:
        self.constraints = constraints
        self.v = v
        self.members = [i for i, c in enumerate(constraints) if c.bound_side is not None]
        self.rows = {i: rows[i] for i in self.members}
        ub, lb, self.owner_ub, self.owner_lb = self._combine()
        self.ub_idx = np.flatnonzero(np.isfinite(ub))
        self.lb_idx = np.flatnonzero(np.isfinite(lb))
        self.ub = cp.Parameter(self.ub_idx.size, name="upper_bounds", value=ub[self.ub_idx])
        self.lb = cp.Parameter(self.lb_idx.size, name="lower_bounds", value=lb[self.lb_idx])
        self.cvx: list[cp.Constraint] = []
        self._ub_con = self._lb_con = None
        if self.ub_idx.size:
            self._ub_con = v.w[self.ub_idx] <= self.ub
            self.cvx.append(self._ub_con)
        if self.lb_idx.size:
            self._lb_con = v.w[self.lb_idx] >= self.lb
            self.cvx.append(self._lb_con)

    def _combine(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = self.v.n
        ub, lb = np.full(n, np.inf), np.full(n, -np.inf)
        owner_ub, owner_lb = np.full(n, -1), np.full(n, -1)
        for i in self.members:
            rows = self.rows[i]
            idx = np.asarray(rows.structure["idx"], dtype=int)
            if self.constraints[i].bound_side == "upper":
                tighter = rows.upper < ub[idx]
                ub[idx[tighter]] = rows.upper[tighter]
                owner_ub[idx[tighter]] = i
            else:
                tighter = rows.lower > lb[idx]
                lb[idx[tighter]] = rows.lower[tighter]
                owner_lb[idx[tighter]] = i
        return ub, lb, owner_ub, owner_lb

    def update(self, universe: Universe) -> None:
        """Re-resolve the folded families on a new universe and assign the new bounds."""
        for i in self.members:
            new = self.constraints[i].resolve(universe)
            if new.labels != self.rows[i].labels:
                raise InputError(f"constraint '{self.constraints[i].label}': its rows changed: build a new Program")
            self.rows[i] = new
        ub, lb, self.owner_ub, self.owner_lb = self._combine()
        if not (np.array_equal(np.flatnonzero(np.isfinite(ub)), self.ub_idx)
                and np.array_equal(np.flatnonzero(np.isfinite(lb)), self.lb_idx)):
            raise InputError("which positions are bounded changed: build a new Program")
        self.ub.value = ub[self.ub_idx]
        self.lb.value = lb[self.lb_idx]

    def refresh(self) -> None:
        """Re-combine the families' current rows into the shared bound Parameters (after a bound changed)."""
        ub, lb, self.owner_ub, self.owner_lb = self._combine()
        self.ub.value = ub[self.ub_idx]
        self.lb.value = lb[self.lb_idx]

    def compiled(self, i: int) -> Compiled:
        """A :class:`Compiled` record for folded family ``i``, its duals read from the shared bounds."""
        empty = np.zeros(0, dtype=int)
        return Compiled(self.constraints[i], self.rows[i], ParamSet({}), empty, empty, False, [], ParamSet({}),
                        dual_source=lambda scale: self.duals(i, scale))

    def duals(self, i: int, scale: float) -> np.ndarray:
        idx = np.asarray(self.rows[i].structure["idx"], dtype=int)
        if self.constraints[i].bound_side == "upper":
            con, positions, owner, sign = self._ub_con, self.ub_idx, self.owner_ub, 1.0
        else:
            con, positions, owner, sign = self._lb_con, self.lb_idx, self.owner_lb, -1.0
        if con is None or con.dual_value is None:
            return np.full(idx.size, np.nan)
        full = np.zeros(self.v.n)
        full[positions] = np.asarray(con.dual_value, dtype=float).reshape(-1)
        return np.where(owner[idx] == i, sign * full[idx], 0.0) / scale


@functools.cache
def _installed_solvers() -> frozenset[str]:
    """cvxpy's installed solvers, looked up once per process (the lookup imports modules: ~4 ms)."""
    return frozenset(cp.installed_solvers())


def trading_costs(u: Universe, policy: Policy) -> np.ndarray:
    """One-off trading cost per opportunity, decimal of the amount traded (bp / 1e4)."""
    obj = policy.objective
    unknown = [k for k in obj.trading_cost_bp_by_id if u.index_of(k) is None]
    if unknown:
        raise InputError(f"policy '{policy.name}': objective.trading_cost_bp_by_id names {unknown}, which the "
                         "snapshot lacks: fix the ids or drop them")
    costs = np.full(u.n, obj.trading_cost_bp / 1e4)
    for key, bp in obj.trading_cost_bp_by_id.items():
        costs[u.index_of(key)] = bp / 1e4
    return costs
