"""Why a policy is infeasible: an elastic re-solve, an irreducible conflicting set, the smallest relaxation.

The elastic program keeps every row ``lower_r <= f_r(w, c) <= upper_r`` of every constraint family but
gives each relaxable bound a slack ``s >= 0`` (``f_r + s_lo >= lower_r``, ``f_r - s_hi <= upper_r``) and
minimizes the weighted total slack

.. math:: \\min \\sum_r (s^{lo}_r + s^{hi}_r) / \\text{step}(\\text{unit}_r)

where a *step* is the natural increment of the row's unit (1 percentage point of NAV, 0.1 year of
duration: :data:`STEPS`), so the weights make "raise a cap by 2 pp" and "lower a duration floor by 0.2
y" cost the same. The solution is the smallest relaxation, in steps, that makes the policy feasible.

The conflicting set is found by a deletion filter over constraint families: start with all of them,
drop each family in turn and keep it dropped if the rest is still infeasible. What remains is
irreducible: the families conflict together, and dropping any one of them restores feasibility. For
each member the diagnosis also gives the smallest relaxation of that family alone.

The built-in families (``budget``, ``long_only``, ``no_new_deposits``) are physical facts, not
policy choices: they are never relaxed, and they are always part of the feasibility tests.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, ParamSet, Rows
from bondfolio.constraints.variables import Vars
from bondfolio.errors import SolverError
from bondfolio.inputs.universe import Universe
from bondfolio.solver.solve import silence_highs_banner

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["STEPS", "Diagnosis", "Relaxation", "diagnose", "format_bound", "step_of"]


#: Natural increment per unit (the weight of a unit of slack is 1 / step); 0.01 otherwise.
STEPS: dict[str, float] = {"years": 0.1}

#: Weighted total slack (in steps) below which a set of constraints counts as feasible.
FEASIBLE_SLACK = 1e-6

#: Solver options of the elastic programs (tight: slacks of 1e-7 of NAV are meaningful).
_OPTIONS: dict[str, dict[str, Any]] = {"CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10,
                                                    "max_iter": 300}}


def step_of(unit: str) -> float:
    """The natural increment of a row's unit."""
    return STEPS.get(unit, 0.01)


def format_bound(value: float | None, unit: str) -> str:
    """A bound or value in its unit: percent for shares of NAV and volatilities, years for durations."""
    if value is None or not math.isfinite(value):
        return "none"
    if unit.startswith("fraction of NAV") or unit == "annual volatility":
        return f"{value:.4g}" if abs(value) >= 100 else f"{value * 100:.4g}%"
    if unit == "years":
        return f"{value:.4g} y"
    return f"{value:.6g} ({unit})"


@dataclass(frozen=True)
class Relaxation:
    """Move one bound of one row by ``amount`` (in the row's unit) to ``to``."""

    constraint: str
    kind: str
    row: str
    side: str
    """``upper`` (raise the cap) or ``lower`` (lower the floor)."""
    bound: float
    to: float
    amount: float
    unit: str

    def to_dict(self) -> dict[str, Any]:
        return {"constraint": self.constraint, "kind": self.kind, "row": self.row, "side": self.side,
                "bound": self.bound, "to": self.to, "amount": self.amount, "unit": self.unit}

    def text(self) -> str:
        verb = "raise" if self.side == "upper" else "lower"
        what = "cap" if self.side == "upper" else "floor"
        return (f"{verb} the {self.constraint} {what} on {self.row} from {format_bound(self.bound, self.unit)} "
                f"to {format_bound(self.to, self.unit)}")


@dataclass
class Diagnosis:
    """The explanation of an infeasible policy."""

    policy: str
    conflict: list[str]
    """Labels of an irreducible set of policy constraints that cannot hold together (with the
    built-in ones, which are always included)."""
    relaxation: list[Relaxation]
    """The jointly smallest relaxation (weighted by :data:`STEPS`) that restores feasibility."""
    alternatives: dict[str, list[Relaxation] | None] = field(default_factory=dict)
    """For each conflicting family: the smallest relaxation of it alone, every other constraint of
    the policy kept (``None`` if relaxing it alone cannot restore feasibility)."""
    builtin_conflict: bool = False
    """The built-in constraints conflict on their own (no policy relaxation helps)."""
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "conflict": self.conflict, "builtin_conflict": self.builtin_conflict,
                "relaxation": [r.to_dict() for r in self.relaxation],
                "alternatives": {k: None if v is None else [r.to_dict() for r in v]
                                 for k, v in self.alternatives.items()},
                "note": self.note}

    def text(self) -> str:
        if self.builtin_conflict:
            return ("diagnosis: the built-in constraints alone (budget, long-only, no new deposits into frozen "
                    "markets) cannot hold: check the budget's cash bounds against the frozen markets' holdings")
        if self.note and not self.conflict:
            return f"diagnosis: {self.note}"
        if len(self.conflict) == 1:
            lines = [f"diagnosis: {self.conflict[0]} cannot hold even alone (with only the built-in budget and "
                     "long-only rules)"]
        else:
            lines = [f"diagnosis: these {len(self.conflict)} constraints conflict (dropping any one of them restores "
                     f"feasibility): {', '.join(self.conflict)}"]
        if self.relaxation:
            lines.append("smallest relaxation that restores feasibility:")
            lines += [f"  - {r.text()}" for r in self.relaxation]
        alone = {k: v for k, v in self.alternatives.items() if v}
        if alone:
            lines.append("or relax one constraint alone:")
            for label, rel in alone.items():
                lines.append(f"  - {label}: " + "; ".join(r.text() for r in rel))
        if self.note:
            lines.append(f"note: {self.note}")
        return "\n".join(lines)


class _Elastic:
    """Feasibility tests on one universe: which families are present, which may be relaxed."""

    def __init__(self, u: Universe, constraints: list[Constraint], rows: list[Rows], solver: str) -> None:
        self.u = u
        self.constraints = constraints
        self.rows = rows
        self.solver = solver
        self.hard = {i for i, c in enumerate(constraints) if not c.relaxable}
        self.solves = 0

    def solve(self, present: set[int], relax: set[int]) -> tuple[str, float, list[Relaxation]]:
        """Minimize the weighted slack of the ``relax`` families with every other ``present`` family
        hard. Returns the status, the weighted slack and the relaxations (rows with slack)."""
        self.solves += 1
        v = Vars(self.u)
        cons: list[cp.Constraint] = []
        slack_terms: list[cp.Expression] = []
        slacks: list[tuple[int, str, np.ndarray, cp.Variable]] = []
        for i in sorted(present | self.hard):
            c, rows = self.constraints[i], self.rows[i]
            expr = c.expression(rows, ParamSet(rows.coefficients, rows.nonneg), v)
            if expr.shape == ():
                expr = cp.reshape(expr, (1,), order="C")
            weight = 1.0 / step_of(rows.unit)
            for side in ("lower", "upper"):
                bound = rows.lower if side == "lower" else rows.upper
                idx = np.flatnonzero(np.isfinite(bound))
                if not idx.size:
                    continue
                part = expr if idx.size == len(rows.labels) else expr[idx]
                if i in relax:
                    s = cp.Variable(idx.size, nonneg=True)
                    slacks.append((i, side, idx, s))
                    slack_terms.append(weight * cp.sum(s))
                    cons.append(part + s >= bound[idx] if side == "lower" else part - s <= bound[idx])
                else:
                    cons.append(part >= bound[idx] if side == "lower" else part <= bound[idx])
        total = cp.sum(cp.hstack(slack_terms)) if slack_terms else cp.Constant(0.0)
        problem = cp.Problem(cp.Minimize(total), [*v.definitions, *cons])
        status = self._run(problem)
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return status, math.inf, []
        out: list[Relaxation] = []
        for i, side, idx, s in slacks:
            rows = self.rows[i]
            tol = FEASIBLE_SLACK * step_of(rows.unit)
            for k, amount in zip(idx, np.asarray(s.value, dtype=float), strict=True):
                if amount > tol:
                    bound = float((rows.lower if side == "lower" else rows.upper)[k])
                    to = bound - amount if side == "lower" else bound + amount
                    out.append(Relaxation(self.constraints[i].label, self.constraints[i].kind, rows.labels[k], side,
                                          bound, float(to), float(amount), rows.unit))
        return status, float(problem.value), out

    def _run(self, problem: cp.Problem) -> str:
        """Solve with the diagnosis's solver, then the others, until one gives an exact status
        (optimal or infeasible): an inaccurate answer or a solver error is never taken as a verdict on
        feasibility while another solver can give one."""
        installed = set(cp.installed_solvers())
        order = [self.solver, *(s for s in ("CLARABEL", "ECOS", "SCS") if s != self.solver and s in installed)]
        seen = "solver_error"
        for name in order:
            if name == "HIGHS":
                silence_highs_banner()
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    problem.solve(solver=name, **_OPTIONS.get(name, {}))
            except cp.error.SolverError:
                continue
            status = str(problem.status)
            if status in (cp.OPTIMAL, cp.INFEASIBLE, cp.UNBOUNDED):
                return status
            seen = status
        return seen

    def feasible(self, present: set[int]) -> bool:
        status, _, _ = self.solve(present, set())
        if status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return True
        if status == cp.INFEASIBLE:
            return False
        raise DiagnosisError(f"no solver decided whether {len(present)} constraint families hold together (last "
                             f"status: {status})")


class DiagnosisError(SolverError):
    """The diagnosis could not be computed (no solver decided a feasibility question)."""


def diagnose(u: Universe, constraints: list[Constraint], policy: str, solvers: tuple[str, ...] = ("CLARABEL",)
             ) -> Diagnosis:
    """Explain why ``constraints`` (a program's effective constraints) admit no allocation on ``u``.

    Costs one elastic solve, one feasibility solve per policy constraint family (the deletion
    filter) and one elastic solve per conflicting family.
    """
    installed = set(cp.installed_solvers())
    solver = next((s for s in solvers if s in installed and s in ("CLARABEL", "ECOS", "SCS")), "CLARABEL")
    rows = [c.resolve_checked(u) for c in constraints]
    e = _Elastic(u, constraints, rows, solver)
    soft = {i for i in range(len(constraints)) if i not in e.hard
            and (np.isfinite(rows[i].lower).any() or np.isfinite(rows[i].upper).any())}
    if not e.feasible(set()):
        return Diagnosis(policy, [], [], builtin_conflict=True)
    status, total, relaxation = e.solve(soft, soft)
    if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return Diagnosis(policy, [], [], note=f"the elastic re-solve did not finish ({solver}: {status})")
    if total <= FEASIBLE_SLACK:
        return Diagnosis(policy, [], [], note=(
            "the elastic re-solve finds the constraints consistent (no relaxation needed): the solver's "
            "infeasibility verdict looks numerical; try another solver order or rescale the tightest bounds"))
    # deletion filter: families whose slack was zero first, so the kept set tends to be the small one
    needed = {i for i in soft if any(r.constraint == constraints[i].label for r in relaxation)}
    core = sorted(soft, key=lambda i: (i in needed, i))
    kept = set(core)
    for i in core:
        if not e.feasible(kept - {i}):
            kept.discard(i)
    conflict = sorted(kept)
    # the claims, verified: the set is infeasible and dropping any member restores feasibility
    if e.feasible(set(conflict)) or any(not e.feasible(set(conflict) - {i}) for i in conflict):
        return Diagnosis(policy, [], relaxation, note="the conflicting set could not be verified (numerical "
                                                      "trouble): only the joint relaxation is reported")
    alternatives: dict[str, list[Relaxation] | None] = {}
    for i in conflict:
        st, _, alone = e.solve(soft, {i})
        alternatives[constraints[i].label] = alone if st in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) else None
    return Diagnosis(policy, [constraints[i].label for i in conflict], relaxation, alternatives)
