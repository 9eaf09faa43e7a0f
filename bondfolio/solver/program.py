"""One convex program per policy: variables, objective terms, every constraint family; built and updated.

The objective is a sum of term objects (:mod:`bondfolio.solver.objective`)::

    maximize  yield + cash + curve_income - risk - trading_cost - slippage - carry - failure_loss - penalties

multiplied by :data:`~bondfolio.solver.solve.OBJECTIVE_SCALE` inside the solver, so APY-sized numbers
(0.05) are not lost in solvers' absolute tolerances; every reported objective value and dual is
scaled back. The linear terms are folded into one Parameter vector ``mu``.

Numbers that change between runs (yields, risk aversion, costs, bounds, current weights, risk
loadings) are cvxpy Parameters, so the problem is DPP-compliant: :meth:`Program.update` plus
:meth:`Program.solve` with ``reuse=True`` re-solves without recompiling. A one-off solve skips the DPP
compilation (``ignore_dpp``), which is several times faster the first time.

Solving (solver order, independent check) lives in :mod:`bondfolio.solver.solve`, bound folding in
:mod:`bondfolio.solver.bounds`, the rate-impact refinement and repair in
:mod:`bondfolio.solver.rate_impact`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Checks, Compiled, Constraint
from bondfolio.constraints.budget import Budget
from bondfolio.constraints.variables import Point, Vars
from bondfolio.constraints.weights import LongOnly, NoNewDeposits
from bondfolio.errors import InputError
from bondfolio.inputs.policy import Policy
from bondfolio.inputs.snapshot import Opportunity
from bondfolio.inputs.universe import Universe
from bondfolio.solver.bounds import BoundFold
from bondfolio.solver.mixed import solve_mixed
from bondfolio.solver.objective import FixedCost, Risk, Term, TradingCost, objective_terms
from bondfolio.solver.rate_impact import RateImpact, solve_with_impact
from bondfolio.solver.solve import OBJECTIVE_SCALE, SOLVER_OPTIONS, Attempt, Solution, solve_once

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["OBJECTIVE_SCALE", "SOLVER_OPTIONS", "Attempt", "Program", "Solution", "effective_constraints"]


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
    if not all(map(attrgetter("depositable"), policy_opportunities)):
        constraints.insert(2, NoNewDeposits())
    labels = [c.label for c in constraints]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise InputError(f"policy '{policy.name}': constraints {dupes} appear twice: drop the copy or give each a "
                         "distinct 'name'")
    return constraints


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
        v = Vars(u, outside=True)
        self.vars = v
        rows = [c.resolve_checked(u) for c in self.constraints]
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
        one_off = 1.0 if obj.cost_horizon_days is None else 365.0 / obj.cost_horizon_days
        impact = RateImpact(u, obj.rate_impact_tolerance_bp, upper, one_off) if obj.rate_impact else None
        self.impact = impact if impact is not None and impact.active else None
        self.terms: list[Term] = objective_terms(u, policy, self.compiled, v.hedge_idx, self.impact, with_risk, upper)
        self.mu = cp.Parameter(u.n, name="linear_objective", value=self._linear_coefficients())
        expr = self.mu @ v.w
        self.term_expressions: list[tuple[Term, cp.Expression]] = []
        """The non-linear terms' expressions as compiled (rate-impact terms, rebuilt per assembly, aside)."""
        for term in self.terms:
            if term.linear or term.per_assembly or not term.active:
                continue
            term_expr = term.expression(v)
            self.term_expressions.append((term, term_expr))
            expr = expr + term_expr if term.sign > 0 else expr - term_expr
        self._base_expr = expr
        self.partitions: dict[str, np.ndarray] = {}
        """The aggregated scenarios' last partition per ``cvar`` constraint kept out of the program (any
        partition bounds CVaR from below, whatever the data): the next :meth:`solve_once` starts from it
        (:mod:`bondfolio.solver.cvar_cuts`); :meth:`solve` clears it."""
        self.assemble()
        self.build_seconds = time.perf_counter() - start

    # ------------------------------------------------------------------ the objective
    def _linear_coefficients(self) -> np.ndarray:
        """``mu``: the linear terms folded into one vector (per unit of weight, APY units)."""
        mu = np.zeros(self.universe.n)
        for term in self.terms:
            if term.linear:
                mu = mu + term.coefficients() if term.sign > 0 else mu - term.coefficients()
        return mu

    def assemble(self) -> None:
        """The cvxpy problem from the base objective and constraints plus the terms built anew at each
        assembly (rate-impact envelopes, whose knots local refinement changes)."""
        v = self.vars
        expr = self._base_expr
        extra: list[cp.Constraint] = []
        for term in self.terms:  # before collecting definitions: a term may create shared variables
            if term.per_assembly and term.active:
                expr = expr + term.expression(v) if term.sign > 0 else expr - term.expression(v)
            if term.active and not term.linear:
                extra += term.constraints()
        cvx = [*v.definitions, *self.fold.cvx, *extra]
        for comp in self.compiled:
            cvx.extend(comp.cvx)
        self.problem = cp.Problem(cp.Maximize(OBJECTIVE_SCALE * expr), cvx)

    def term(self, name: str) -> Term:
        """The objective term called ``name`` (see :mod:`bondfolio.solver.objective`)."""
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def risk(self) -> Risk:
        term = self.term("risk")
        assert isinstance(term, Risk)
        return term

    @property
    def has_risk(self) -> bool:
        return self.risk.active

    @property
    def costs(self) -> np.ndarray:
        """One-off trading cost per opportunity, decimal of the amount traded."""
        term = self.term("trading_cost")
        assert isinstance(term, TradingCost)
        return term.costs

    def exact_objective(self, point: Point) -> float:
        """The objective at ``point`` in numpy, every term on its exact model (APY units)."""
        value = 0.0
        for term in self.terms:
            if term.active or term.linear:
                value += term.sign * term.value(point)
        return value

    def penalties(self, point: Point) -> float:
        """Sum of the soft constraints' penalties at ``point`` (numpy), APY units."""
        return float(sum(t.value(point) for t in self.terms if t.name == "penalty"))

    # ------------------------------------------------------------------ re-solves
    def update(self, universe: Universe | None = None, risk_aversion: float | None = None) -> None:
        """Assign new numbers without recompiling: a new universe of the same shape and structure,
        and/or a new risk aversion."""
        if universe is not None:
            if universe.ids != self.universe.ids:
                raise InputError("the new snapshot's opportunities differ from the compiled ones: build a new Program")
            if self.impact is not None:
                raise InputError("this program models rate impact, whose envelopes depend on the snapshot: "
                                 "build a new Program for a new snapshot")
            self.universe = universe
            self.vars.update(universe)
            self.fold.update(universe)
            for comp in self.compiled:
                if comp.dual_source is None:
                    comp.constraint.update(comp, universe)
            for term in self.terms:
                term.update(universe)
            self.mu.value = self._linear_coefficients()
        if risk_aversion is not None:
            if risk_aversion > 0 and not self.has_risk:
                raise InputError("this program was built without a risk term: build it with with_risk=True")
            self.risk.set_risk_aversion(risk_aversion)

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
        return self.risk.risk_aversion

    # ------------------------------------------------------------------ solving
    def solve(self, reuse: bool = False) -> Solution:
        """Solve (see :func:`bondfolio.solver.solve.solve_once`); with fixed costs, choose which
        positions trade (:func:`bondfolio.solver.mixed.solve_mixed`); with rate impact, refine and
        repair the envelopes (:func:`bondfolio.solver.rate_impact.solve_with_impact`) around that choice.

        Aggregated ``cvar`` scenarios start from one group here, so a solve's answer (and its record) does
        not depend on what the program solved before; the solves within (branch and bound nodes, rate
        impact rounds) start from the partition the previous one ended with."""
        self.partitions.clear()
        fixed = self.fixed_cost
        if fixed is not None:
            solution = solve_mixed(self, fixed)
            if self.impact is None:
                return solution
            mixed = solution.mixed
            solution = solve_with_impact(self, self.impact, reuse=True)  # the trade pattern stays fixed
            solution.mixed = mixed
            return solution
        if self.impact is None:
            return self.solve_once(reuse)
        return solve_with_impact(self, self.impact, reuse)

    @property
    def fixed_cost(self) -> FixedCost | None:
        """The ``fixed_cost`` term, when the policy has one."""
        return next((t for t in self.terms if isinstance(t, FixedCost)), None)

    def solve_once(self, reuse: bool = False) -> Solution:
        """One pass over the policy's solver order (see :func:`bondfolio.solver.solve.solve_once`)."""
        return solve_once(self, reuse)

    def max_violation(self, point: Point) -> float:
        """The largest violation of :meth:`check` (every row of every constraint, numpy), without building
        the per-row results: for sweeps that check many points."""
        worst = 0.0
        for comp in self.compiled:
            _, violation = comp.constraint.row_values(point, self.universe, comp.rows)
            worst = max(worst, float(violation.max(initial=0.0)))
        fixed = self.fixed_cost
        if fixed is not None:
            worst = max([worst, *(r.violation for r in fixed.check(point, self.policy.solver.check_tolerance))])
        return worst

    def check(self, point: Point) -> Checks:
        """Every row of every constraint evaluated on ``point`` with numpy (no solver involved)."""
        results = Checks()
        for comp in self.compiled:
            comp.constraint.check_into(results, point, self.universe, comp.rows)
        fixed = self.fixed_cost
        if fixed is not None:
            results.extend_results(fixed.check(point, self.policy.solver.check_tolerance))
        return results
