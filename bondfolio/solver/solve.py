"""Solving with the policy's solver order, accepting only answers that pass the independent check.

Each solver of ``[solver] order`` is tried in turn. ``optimal`` and ``optimal_inaccurate`` answers are
accepted only after the numpy check of every constraint row passes (and the inaccurate ones are
flagged); a certificate of infeasibility or unboundedness raises at once; anything else moves on to
the next solver, and every attempt is recorded.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Checks, Compiled, Constraint, RowResult
from bondfolio.constraints.variables import Point, Vars
from bondfolio.errors import CheckFailedError, InfeasibleError, SolverError, UnboundedError
from bondfolio.inputs.policy import DEFAULT_SOLVERS, SCENARIO_LP_SOLVERS, Policy
from bondfolio.inputs.universe import Universe
from bondfolio.solver.ipm import NAME as BLOCK_IPM

if TYPE_CHECKING:
    import cvxpy as cp

    from bondfolio.solver.direct import Conic
    from bondfolio.solver.ipm import Result as IpmResult
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["BLOCK_IPM_MIN_N", "BLOCK_SOLVERS", "OBJECTIVE_SCALE", "SOLVER_OPTIONS",
           "Attempt", "Solution", "Solvable", "silence_highs_banner", "solve_once",
           "solver_order"]

#: Factor applied to the objective inside the solver (1e4: the solver sees basis points).
OBJECTIVE_SCALE = 1e4

#: Options passed to each solver. Tight tolerances: weights are checked to 1e-7 of NAV afterwards.
SOLVER_OPTIONS: dict[str, dict[str, Any]] = {
    # faer's sparse LDL: 0.8x the solve time of the default QDLDL at n = 10,000 (same iterations, weights
    # equal to 1e-14); one thread, so every run is the same bit for bit
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 200,
                 "direct_solve_method": "faer", "max_threads": 1},
    # bondfolio's own (bondfolio.solver.ipm): Clarabel's stopping rule and tolerances
    BLOCK_IPM: {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 100},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
    "ECOS": {"abstol": 1e-9, "reltol": 1e-9, "feastol": 1e-9},
    "OSQP": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 200_000, "polishing": True},
    "HIGHS": {"primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9},
}


#: Solvers tried in order for a large book of the block shape (see :func:`solver_order`).
BLOCK_SOLVERS: tuple[str, ...] = (BLOCK_IPM, "CLARABEL", "SCS")

#: Books from this many positions on go to BLOCK_IPM first when their program has its shape. Measured
#: on the benchmark books (solver time, same run): 0.5-1.7x Clarabel's at n = 300-1,000, 0.25-0.4x
#: at 3,000, 0.3x at 10,000; below this size the gain is small and Clarabel, the more general and
#: longer-tested solver, stays first.
BLOCK_IPM_MIN_N = 2000

#: Solvers bondfolio ships itself (not cvxpy's): always installed.
OWN_SOLVERS = frozenset({BLOCK_IPM})

#: A second try of the same solver when its answer failed the check or it stopped early: tighter
#: tolerances and more iterations (interior point: a finer gap; SCS: a finer residual and acceleration).
TIGHTER: dict[str, dict[str, Any]] = {
    "CLARABEL": {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "max_iter": 500,
                 "static_regularization_constant": 1e-10, "direct_solve_method": "faer", "max_threads": 1},
    "SCS": {"eps_abs": 1e-11, "eps_rel": 1e-11, "max_iters": 1_000_000, "acceleration_lookback": 20},
}


class Solvable(Protocol):
    """What :func:`solve_once` needs of a program (:class:`bondfolio.solver.program.Program`)."""

    universe: Universe
    policy: Policy
    constraints: list[Constraint]
    compiled: list[Compiled]
    vars: Vars
    problem: cp.Problem
    build_seconds: float
    partitions: dict[str, np.ndarray]

    def check(self, point: Point) -> Sequence[RowResult]: ...


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
    checks: Sequence[RowResult]
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
    mixed: dict[str, Any] | None = None
    """Which positions to trade, when the program has fixed costs: method, nodes, bound and gap."""
    order: tuple[str, ...] = DEFAULT_SOLVERS
    """The solvers tried, in order (see :func:`solver_order`)."""
    order_from: str = "policy"
    """Where that order came from: ``"policy"`` or ``"shape: ..."``."""
    scenarios: list[dict[str, Any]] = field(default_factory=list)
    """Per ``cvar`` constraint solved by aggregated scenarios: master solves, groups, the bound's gap
    (:meth:`bondfolio.solver.cvar_cuts.Block.report`)."""
    multipliers: dict[str, np.ndarray] = field(default_factory=dict)
    """Multipliers of rows kept out of the compiled program, by ``"<family label>:<part>"`` as in
    :attr:`~bondfolio.constraints.variables.Vars.named` (the scenarios' tail rows)."""

    @property
    def max_violation(self) -> float:
        return _largest_violation(self.checks)


@functools.cache
def silence_highs_banner() -> None:
    """HiGHS writes a banner to the process's stdout (file descriptor 1, below Python) the first time a
    ``Highs`` object is made, before any option can silence it: it would corrupt ``--format json`` on
    stdout and the MCP server's stdio. Make that first object here, once, with descriptor 1 pointed at
    /dev/null; later ones print nothing."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def solver_order(program: Solvable, reuse: bool = False) -> tuple[tuple[str, ...], str]:
    """The solvers to try, in order, and where that order came from: the policy's ``[solver] order``
    when it sets one (``"policy"``), else the program's shape: a linear program with a scenario block
    (a ``cvar`` limit, no quadratic or conic term) goes to HiGHS first (``"shape: scenario LP"``); a
    book of at least :data:`BLOCK_IPM_MIN_N` positions whose program the direct assembly covers
    (factor risk, linear rows, at most a volatility cone: :func:`bondfolio.solver.direct.covered`)
    to the block-structured interior point first (:mod:`bondfolio.solver.ipm`, then Clarabel and
    SCS) unless it is compiled for re-solves (``reuse``: DPP goes through cvxpy); anything else (QP,
    second-order cone, curve envelopes) to Clarabel first (``"shape: QP or conic"`` or ``"shape: LP"``)."""
    if program.policy.solver.order is not None:
        return program.policy.solver.order, "policy"
    if program.problem.is_lp():
        if any(c.kind == "cvar" for c in program.constraints):
            return SCENARIO_LP_SOLVERS, "shape: scenario LP"
        return DEFAULT_SOLVERS, "shape: LP"
    from bondfolio.solver.direct import covered

    if not reuse and program.universe.n >= BLOCK_IPM_MIN_N and covered(program):
        return BLOCK_SOLVERS, f"shape: factor-model QP or volatility cone in blocks, n >= {BLOCK_IPM_MIN_N}"
    return DEFAULT_SOLVERS, "shape: QP or conic"


def solve_once(program: Solvable, reuse: bool = False) -> Solution:
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
    from bondfolio.solver.cvar_cuts import blocks_of
    from bondfolio.solver.direct import assemble

    blocks = blocks_of(program)
    if blocks:
        return _solve_aggregated(program, blocks, reuse)
    settings = program.policy.solver
    attempts: list[Attempt] = []
    installed = _installed_solvers()
    failed_check: Sequence[RowResult] = []
    infeasible_inaccurate = False
    tries: list[tuple[str, dict[str, Any], bool]] = []
    order, order_from = solver_order(program, reuse)
    for name in order:
        tries.append((name, SOLVER_OPTIONS.get(name, {}), False))
        if name in TIGHTER:
            tries.append((name, TIGHTER[name], True))
    skip: set[str] = set()
    conic: Conic | None = None
    assembled = False
    for name, options, tightened in tries:
        if name in skip:
            continue
        if name not in installed and name not in OWN_SOLVERS:
            attempts.append(Attempt(name, "not_installed", False, 0.0, "solver is not installed"))
            skip.add(name)
            continue
        if name == "HIGHS":
            silence_highs_banner()
        start = time.perf_counter()
        if name in ("CLARABEL", BLOCK_IPM) and not reuse and not assembled:
            # None: a shape the direct assembly does not cover (solved through cvxpy)
            conic, assembled = assemble(program, OBJECTIVE_SCALE), True
        if name == BLOCK_IPM:
            result, why = _solve_blocks(conic, options)
            if why:
                attempts.append(Attempt(name, "not_applicable" if result is None else result.status, False,
                                        time.perf_counter() - start, why))
                continue
        direct = name in ("CLARABEL", BLOCK_IPM) and conic is not None
        solver_seconds: float | None = None
        try:
            if name == BLOCK_IPM:
                assert result is not None
                solver_seconds = result.seconds
            elif direct:
                assert conic is not None
                solver_seconds = conic.solve(options)
            else:
                with warnings.catch_warnings():  # an inaccurate status is recorded and checked, not printed
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    program.problem.solve(solver=name, ignore_dpp=not reuse, warm_start=False, **options)
                stats = program.problem.solver_stats
                solver_seconds = None if stats is None or stats.solve_time is None else float(stats.solve_time)
        except cp.error.SolverError as exc:
            attempts.append(Attempt(name, "error", False, time.perf_counter() - start, str(exc)[:300]))
            continue
        seconds = time.perf_counter() - start
        status = str(program.problem.status)
        if status == cp.INFEASIBLE:
            attempts.append(Attempt(name, status, False, seconds))
            raise InfeasibleError(_infeasible_message(program, name), policy=program.policy.name)
        if status == cp.UNBOUNDED:
            attempts.append(Attempt(name, status, False, seconds))
            raise UnboundedError(_unbounded_message(program), [a.to_dict() for a in attempts])
        if status == cp.INFEASIBLE_INACCURATE:
            infeasible_inaccurate = True
            attempts.append(Attempt(name, status, False, seconds, "inaccurate certificate: trying the next solver"))
            skip.add(name)
            continue
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or program.vars.w.value is None:
            attempts.append(Attempt(name, status, False, seconds, "no solution returned"))
            continue
        point = _point(program)
        checks = program.check(point)
        worst = _largest_violation(checks)
        if worst > settings.check_tolerance:
            failed_check = checks
            attempts.append(Attempt(name, status, False, seconds,
                                    f"independent check failed: largest violation {worst:.3g} > "
                                    f"{settings.check_tolerance:g}" + ("" if tightened else
                                                                        "; retrying with tighter settings")))
            continue
        attempts.append(Attempt(name, status, True, seconds, "tighter settings" if tightened else ""))
        return Solution(
            point=point,
            solver=name,
            status=status,
            inaccurate=status == cp.OPTIMAL_INACCURATE,
            objective=float(program.problem.value) / OBJECTIVE_SCALE,
            attempts=attempts,
            checks=checks,
            duals=[comp.duals(OBJECTIVE_SCALE) for comp in program.compiled],
            compile_seconds=program.build_seconds,
            solve_seconds=seconds,
            solver_seconds=solver_seconds,
            options={"ignore_dpp": not reuse, "objective_scale": OBJECTIVE_SCALE,
                     "assembly": "direct" if direct else "cvxpy", **options},
            order=order,
            order_from=order_from,
        )
    raise _no_answer(program, attempts, failed_check, infeasible_inaccurate)


def _solve_blocks(conic: Conic | None, options: dict[str, Any]) -> tuple[IpmResult | None, str]:
    """Run the block-structured interior point on ``conic``; returns its result and, if it gave no
    answer, why (the caller records it and tries the next solver)."""
    if conic is None:
        return None, ("the program's shape is not one it solves (factor risk, linear rows, at most one "
                      "volatility cone: see bondfolio.solver.direct)")
    structure = conic.structure()
    if structure is None:
        return None, "the rows do not split into blocks of at most two variables and a few coupling rows"
    result = conic.solve_blocks(options, structure)
    if result.status != "optimal":
        return result, f"{result.status} after {result.iterations} iterations: {result.detail}"
    return result, ""


def _largest_violation(checks: Sequence[RowResult]) -> float:
    if isinstance(checks, Checks):
        return checks.max_violation
    return max((r.violation for r in checks), default=0.0)


def _point(program: Solvable) -> Point:
    """The allocation the program's variables hold after a solve."""
    margin = float(np.asarray(program.vars.margin.value)) if program.vars.has_margin else 0.0
    return Point(np.array(program.vars.w.value, dtype=float), float(np.asarray(program.vars.cash.value)), margin)


def _no_answer(program: Solvable, attempts: list[Attempt], failed_check: Sequence[RowResult],
               infeasible_inaccurate: bool) -> Exception:
    """The error when no solver of the order gave a verified allocation."""
    summary = "; ".join(f"{a.solver}: {a.status}" + (f" ({a.detail})" if a.detail else "") for a in attempts)
    if failed_check:
        worst_row = max(failed_check, key=lambda r: r.violation)
        return CheckFailedError(
            f"policy '{program.policy.name}': every solver's answer violated a constraint; worst: "
            f"{worst_row.constraint}[{worst_row.row}] = {worst_row.value:.10g} outside "
            f"[{worst_row.lower:.10g}, {worst_row.upper:.10g}]. Attempts: {summary}",
            [a.to_dict() for a in attempts],
        )
    if infeasible_inaccurate:
        return InfeasibleError(
            f"policy '{program.policy.name}' appears infeasible (solvers returned inaccurate infeasibility "
            f"certificates: {summary}): loosen the tightest constraints",
            policy=program.policy.name,
        )
    return SolverError(f"policy '{program.policy.name}': no solver produced an allocation. Attempts: {summary}",
                       [a.to_dict() for a in attempts])


def _solve_aggregated(program: Solvable, blocks: list[Any], reuse: bool) -> Solution:
    """:func:`solve_once` for a program with ``cvar`` scenario blocks kept out of it: each solver of the
    order in turn runs the aggregated-scenario loop (:mod:`bondfolio.solver.cvar_cuts`; HiGHS on a linear
    program as one live model, anything else through cvxpy), and its answer must pass the same
    independent check."""
    from bondfolio.solver.cvar_cuts import CvxpyMaster, HighsMaster, Infeasible, Master, Unbounded, run_loop

    settings = program.policy.solver
    order, order_from = solver_order(program)
    installed = _installed_solvers()
    attempts: list[Attempt] = []
    failed_check: Sequence[RowResult] = []
    linear = program.problem.is_lp()
    for name in order:
        if name not in installed:
            attempts.append(Attempt(name, "not_installed", False, 0.0, "solver is not installed"))
            continue
        options = SOLVER_OPTIONS.get(name, {})
        start = time.perf_counter()
        master: Master
        try:
            if name == "HIGHS" and linear:
                silence_highs_banner()
                master = HighsMaster(program, blocks, reuse, options)
            else:
                master = CvxpyMaster(program, blocks, name, options)
            answer = run_loop(master, blocks, program.policy.name, program.partitions)
            if isinstance(master, HighsMaster):
                master.unpack()
        except Infeasible:
            attempts.append(Attempt(name, cp.INFEASIBLE, False, time.perf_counter() - start, "aggregated scenarios"))
            raise InfeasibleError(_infeasible_message(program, name) + " (the aggregated scenarios' master "
                                  "program, a relaxation of the full one, is already infeasible)",
                                  policy=program.policy.name) from None
        except Unbounded:
            attempts.append(Attempt(name, cp.UNBOUNDED, False, time.perf_counter() - start, "aggregated scenarios"))
            raise UnboundedError(_unbounded_message(program), [a.to_dict() for a in attempts]) from None
        except (SolverError, cp.error.SolverError) as exc:
            attempts.append(Attempt(name, "error", False, time.perf_counter() - start, str(exc)[:300]))
            continue
        seconds = time.perf_counter() - start
        point = _point(program)
        checks = program.check(point)
        worst = _largest_violation(checks)
        detail = "aggregated scenarios: " + "; ".join(
            f"{b.label}: {b.solves} master solves, {b.groups} groups of {b.probability.size} scenarios" for b in blocks)
        if worst > settings.check_tolerance:
            failed_check = checks
            attempts.append(Attempt(name, cp.OPTIMAL, False, seconds, f"{detail}; independent check failed: "
                                    f"largest violation {worst:.3g} > {settings.check_tolerance:g}"))
            continue
        status = cp.OPTIMAL_INACCURATE if master.inaccurate else cp.OPTIMAL
        attempts.append(Attempt(name, status, True, seconds, detail))
        problem = master.problem
        assert problem is not None and problem.value is not None
        stats = problem.solver_stats
        return Solution(
            point=point,
            solver=name,
            status=status,
            inaccurate=master.inaccurate,
            objective=float(problem.value) / OBJECTIVE_SCALE,
            attempts=attempts,
            checks=checks,
            duals=[comp.duals(OBJECTIVE_SCALE) for comp in program.compiled],
            compile_seconds=program.build_seconds,
            solve_seconds=seconds,
            solver_seconds=None if stats is None or stats.solve_time is None else float(stats.solve_time),
            options={"ignore_dpp": not reuse, "objective_scale": OBJECTIVE_SCALE, **options},
            order=order,
            order_from=order_from,
            scenarios=[b.report() for b in blocks],
            multipliers={f"{b.label}:tail": b.multipliers(d) for b, d in zip(blocks, answer.duals, strict=True)},
        )
    raise _no_answer(program, attempts, failed_check, False)


def _infeasible_message(program: Solvable, solver: str) -> str:
    kinds = ", ".join(c.label for c in program.constraints)
    return (f"policy '{program.policy.name}' is infeasible: no allocation satisfies all of its constraints "
            f"together ({kinds}); {solver} returned a certificate of infeasibility. Loosen the tightest "
            "bounds or widen the opportunity set.")

def _unbounded_message(program: Solvable) -> str:
    free = [program.universe.ids[i] for i in np.flatnonzero(program.universe.hedge)]
    hint = f" (hedges {free[:5]} have no bound: add max_weight/min_weight for them)" if free else ""
    return (f"policy '{program.policy.name}' is unbounded: the objective can grow without limit{hint}; bound "
            "every position or add risk aversion")


@functools.cache
def _installed_solvers() -> frozenset[str]:
    """cvxpy's installed solvers, looked up once per process (the lookup imports modules: ~4 ms)."""
    return frozenset(cp.installed_solvers())
