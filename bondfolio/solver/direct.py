"""Clarabel's conic data assembled directly from the row families, for the shape a large book has.

cvxpy's canonicalization of a book of n = 10,000 (factor exposures ``y = R' w``: 20 dense rows, 200,000
of the 340,000 nonzeros) takes longer than everything else but the solver. For a program of this shape
the solver's data are written here from the same numbers the cvxpy program holds:

- variables ``x = [w, c, a, y]``: weights, idle cash, trade sizes ``a >= |w - w0|`` (if made), factor
  exposures (if made);
- objective ``minimize -S (mu' w + cash_apy c - cost' a - (gamma / 2)(|y|^2 + d' w^2))``, ``S`` the
  :data:`~bondfolio.solver.solve.OBJECTIVE_SCALE`;
- rows: the factor definition and equality rows (zero cone); the trade-size definitions, the folded
  bounds and every family's bounded rows from :meth:`~bondfolio.constraints.base.Constraint.linear`
  (nonnegative cone); ``max_volatility`` as one second-order cone ``|(y, s * w)| <= sigma``.

The solution is handed back to the cvxpy problem (:meth:`cvxpy.Problem.unpack`): variable values, the
status, the objective value and every constraint's dual, with cvxpy's signs, so everything downstream
(the independent check, duals, the record) reads the program as after ``problem.solve``.

Anything else goes through cvxpy as before: :func:`assemble` returns ``None`` for a program with a
constraint or objective term it does not know (hedges, margin, CVaR, rate curves, penalties, a dense
covariance, a liquidity buffer with a ``min`` term), and for DPP re-solves. The record's solver options
say which way a solve went (``"assembly"``); tests compare the two ways' optima and duals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.risk import MaxVolatility

if TYPE_CHECKING:
    import cvxpy as cp
    import scipy.sparse as sp

else:
    cp = lazy_module("cvxpy", globals(), "cp")
    sp = lazy_module("scipy.sparse", globals(), "sp")

__all__ = ["Conic", "assemble", "covered"]


def _widen(a: Any, size: int) -> Any:
    """``a`` with zero columns appended up to ``size``."""
    a = sp.csr_array(a)
    return sp.csr_array((a.data, a.indices, a.indptr), shape=(a.shape[0], size))


@dataclass
class _Block:
    """Rows ``A x + s = b`` of one cvxpy constraint, ``s`` in the block's cone."""

    constraint: cp.Constraint | None
    """The cvxpy constraint the rows come from (its dual is theirs); ``None`` for rows whose multipliers
    cvxpy does not report (the volatility cone)."""
    a: Any
    b: np.ndarray
    cone: str
    """``"zero"``, ``"nonneg"`` or ``"soc"``."""


@dataclass
class _Cap:
    """The volatility limit ``|(y, s * w)| <= t <= sigma`` as assembled: its cone block and bound row."""

    block: _Block
    bound: _Block
    sigma: float
    q: np.ndarray
    """``diag(1 on y, s^2 on w)`` over ``x`` without ``t``: the cone's ``|u|^2 = x' diag(q) x``."""


@dataclass
class Conic:
    """A program's conic data in Clarabel's form, and how to hand a solution back to cvxpy."""

    P: Any
    q: np.ndarray
    A: Any
    b: np.ndarray
    cones: list[Any]
    blocks: list[_Block]
    variables: list[tuple[cp.Variable, int]]
    """Each cvxpy variable and the offset of its first entry in ``x``."""
    problem: cp.Problem
    cap: _Cap | None = None
    """The volatility limit's cone, if the program has one."""

    def solve(self, options: dict[str, Any]) -> float | None:
        """Solve with Clarabel under ``options`` and unpack the answer into the cvxpy problem; returns
        Clarabel's own solve time. Raises :class:`cvxpy.error.SolverError` as cvxpy would."""
        import clarabel
        from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL

        settings = clarabel.DefaultSettings()
        settings.verbose = False
        for key, value in options.items():
            setattr(settings, key, value)
        result = clarabel.DefaultSolver(self.P, self.q, self.A, self.b, self.cones, settings).solve()
        status = CLARABEL.STATUS_MAP.get(str(result.status), cp.SOLVER_ERROR)
        if status == cp.SOLVER_ERROR:
            raise cp.error.SolverError(f"Solver 'CLARABEL' failed ({result.status}, direct assembly)")
        self._unpack(status, None if result.x is None else np.asarray(result.x),
                     None if result.z is None else np.asarray(result.z), float(result.obj_val),
                     {"solve_time": result.solve_time, "num_iters": result.iterations})
        return float(result.solve_time)

    def structure(self) -> Any:
        """The program in the form of :mod:`bondfolio.solver.ipm` (an :class:`~bondfolio.solver.ipm.Structure`),
        or None if its rows do not split into blocks that solver is written for. The volatility cone
        ``|(y, s * w)| <= t <= sigma`` becomes ``1/2 x'Qx <= 1/2`` with ``Q = diag(1, s^2) / sigma^2`` on
        ``(y, w)``, without ``t``."""
        from bondfolio.solver.ipm import Structure

        zero, nonneg, cols = self._rows("zero"), self._rows("nonneg"), self.q.size
        A = sp.csr_array(self.A)
        Q = None
        if self.cap is not None:
            cols -= 1  # t, the last entry of x
            bound = self._offset(self.cap.bound)
            nonneg = nonneg[nonneg != bound]
            Q = self.cap.q / self.cap.sigma ** 2
        return Structure.of(self.P.diagonal()[:cols], self.q[:cols], A[zero][:, :cols], self.b[zero],
                            A[nonneg][:, :cols], self.b[nonneg], Q)

    def solve_blocks(self, options: dict[str, Any], structure: Any) -> Any:
        """Solve with :mod:`bondfolio.solver.ipm` under ``options`` (Clarabel's tolerance names) and, if it
        reached the optimum, unpack the answer into the cvxpy problem as :meth:`solve` does; returns the
        solver's :class:`~bondfolio.solver.ipm.Result`."""
        from bondfolio.solver.ipm import solve

        result = solve(structure, tol_feas=options["tol_feas"], tol_gap_abs=options["tol_gap_abs"],
                       tol_gap_rel=options["tol_gap_rel"], max_iter=options["max_iter"])
        if result.status != "optimal":
            return result
        zg, nu = structure.multipliers(result.z, result.nu)
        z = np.zeros(self.b.size)
        z[self._rows("zero")] = nu
        x = result.x
        if self.cap is None:
            z[self._rows("nonneg")] = zg
        else:
            # the bound row's multiplier is d(objective)/d(sigma): z_cap / sigma; the cone's, complementary to (t, u)
            bound = self._offset(self.cap.bound)
            nonneg = self._rows("nonneg")
            z[nonneg[nonneg != bound]] = zg
            rho = result.z_cap / self.cap.sigma
            z[bound] = rho
            u = -(sp.csr_array(self.cap.block.a[1:])[:, :x.size] @ x)
            t = float(np.linalg.norm(u))
            x = np.append(x, t)
            at = self._offset(self.cap.block)
            z[at] = rho
            z[at + 1:at + 1 + u.size] = -rho * u / t if t > 0 else 0.0
        self._unpack(cp.OPTIMAL, x, z, result.objective, {"solve_time": result.seconds, "num_iters": result.iterations})
        return result

    def _rows(self, cone: str) -> np.ndarray:
        """Row numbers of the rows in cones of kind ``cone``."""
        out, start = [], 0
        for block in self.blocks:
            if block.cone == cone:
                out.append(np.arange(start, start + block.b.size))
            start += block.b.size
        return np.concatenate(out) if out else np.zeros(0, dtype=int)

    def _offset(self, target: _Block) -> int:
        start = 0
        for block in self.blocks:
            if block is target:
                return start
            start += block.b.size
        raise ValueError("block not in this program")

    def _unpack(self, status: str, x: np.ndarray | None, z: np.ndarray | None, objective: float,
                attr: dict[str, Any]) -> None:
        """Hand a solver's answer to the cvxpy problem: values, status, objective and duals (cvxpy's signs)."""
        from cvxpy.reductions.solution import Solution, failure_solution

        duals = {} if z is None else self._duals(z)
        if status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.USER_LIMIT) and x is not None:
            primal = {var.id: np.reshape(x[start:start + var.size], var.shape) for var, start in self.variables}
            solution = Solution(status, -objective, primal, duals, attr)
        else:
            solution = failure_solution(status, attr, duals)
        self.problem.unpack(solution)

    def _duals(self, z: np.ndarray) -> dict[int, Any]:
        out: dict[int, Any] = {}
        start = 0
        for block in self.blocks:
            m = block.b.size
            if block.constraint is not None:
                out[block.constraint.id] = np.reshape(z[start:start + m], block.constraint.shape)
            start += m
        return out


def covered(program: Any) -> bool:
    """Whether ``program``'s variables and objective are of the shape :func:`assemble` writes (no hedges,
    margin or outside positions, factor-form or no risk, only the cash, risk and trading-cost terms).
    Its constraints are checked as they are assembled: a family without linear rows still makes
    :func:`assemble` return None."""
    if getattr(program, "fold", None) is None:
        return False
    v, u = program.vars, program.universe
    if v.hedge_idx.size or v.has_margin or v.outside or u.snapshot.risk.covariance is not None:
        return False
    if any(term.name not in ("cash", "risk", "trading_cost") for term, _ in program.term_expressions):
        return False
    return not (any(t.active and t.per_assembly for t in program.terms)
                or any(t.active and not t.linear and t.constraints() for t in program.terms))


def assemble(program: Any, scale: float) -> Conic | None:
    """The conic data of ``program`` (a :class:`~bondfolio.solver.program.Program`, its objective times
    ``scale``) if it has the shape this module covers (see the module docstring), else ``None`` (solve
    through cvxpy). (Terms are told apart by name: this module sits below the objective package, which
    imports the solver.)"""
    v, u = program.vars, program.universe
    n = u.n
    if not covered(program):
        return None
    # the objective: mu' w plus the cash, risk and trading-cost terms, nothing else
    cash_apy: float = 0.0
    risk: Any = None
    cost: Any = None
    for term, _ in program.term_expressions:
        if term.name == "cash":
            cash_apy = float(np.asarray(term.param.value))
        elif term.name == "risk":
            risk = term
        elif term.name == "trading_cost":
            cost = term
    variables: list[tuple[cp.Variable, int]] = [(v.w, 0), (v.cash, n)]
    size = n + 1
    trade = v.trade_rows is not None
    if trade:
        variables.append((v.trade_size, size))
        size += n
    y = v.factor
    k = 0 if y is None else y.size
    y_at = size
    if y is not None:
        variables.append((y, size))
        size += k
    epigraph = False
    cap: _Cap | None = None
    wanted = {var.id for var, _ in variables}
    if {var.id for var in program.problem.variables()} != wanted:
        return None

    def cols(matrix: Any, offset: int) -> Any:
        """``matrix`` (rows x its columns) placed at column ``offset`` of ``x``."""
        coo = sp.coo_array(matrix)
        return sp.csr_array((coo.data, (coo.row, coo.col + offset)), shape=(coo.shape[0], size))

    def unit(idx: np.ndarray, offset: int, sign: float = 1.0) -> Any:
        return sp.csr_array((np.full(idx.size, sign), (np.arange(idx.size), idx + offset)), shape=(idx.size, size))

    blocks: list[_Block] = []
    numbers = v.risk_numbers
    if y is not None:  # y - R' w = 0
        assert numbers is not None and v.factor_row is not None
        a = cols(-numbers[0].T, 0) + unit(np.arange(k), y_at)
        blocks.append(_Block(v.factor_row, a, np.zeros(k), "zero"))
    if trade:  # a >= w - w0 and a >= w0 - w, as  w - a <= w0  and  -w - a <= -w0
        assert v.trade_rows is not None
        w0 = np.asarray(v.w0.value, dtype=float)
        every = np.arange(n)
        blocks.append(_Block(v.trade_rows[0], unit(every, 0) + unit(every, n + 1, -1.0), w0, "nonneg"))
        blocks.append(_Block(v.trade_rows[1], unit(every, 0, -1.0) + unit(every, n + 1, -1.0), -w0, "nonneg"))
    fold = program.fold
    if fold._ub_con is not None:
        blocks.append(_Block(fold._ub_con, unit(fold.ub_idx, 0), np.asarray(fold.ub.value, dtype=float), "nonneg"))
    if fold._lb_con is not None:
        blocks.append(_Block(fold._lb_con, unit(fold.lb_idx, 0, -1.0), -np.asarray(fold.lb.value, dtype=float),
                             "nonneg"))
    for comp in program.compiled:
        if comp.dual_source is not None:
            continue  # folded into the bounds above
        rows = comp.rows
        if isinstance(comp.constraint, MaxVolatility):
            if epigraph:
                return None  # one volatility limit per program
            cone = _volatility(comp, v, n, size + 1, y, numbers)
            if cone is None:
                return None
            epigraph = True
            blocks += cone
            # |u|^2 of the cone's rows u = (y, s * w), each row one variable's multiple
            body = sp.coo_array(cone[0].a[1:])
            weights = np.zeros(size)
            np.add.at(weights, body.col, body.data ** 2)
            cap = _Cap(cone[0], cone[1], float(comp.rows.upper[0]), weights)
            continue
        lin = comp.constraint.linear(rows, v)
        if lin is None or (lin.trade is not None and not trade):
            return None
        a = cols(lin.w, 0) + cols(sp.csr_array(lin.cash.reshape(-1, 1)), n)
        if lin.trade is not None:
            a = a + cols(lin.trade, n + 1)
        if comp.equality:
            blocks.append(_Block(comp.cvx[0], sp.csr_array(a), rows.lower.copy(), "zero"))
            continue
        sides = iter(comp.cvx)
        if comp.lower_idx.size:  # f >= lo  as  -f <= -lo
            blocks.append(_Block(next(sides), sp.csr_array(-a[comp.lower_idx]), -rows.lower[comp.lower_idx], "nonneg"))
        if comp.upper_idx.size:
            blocks.append(_Block(next(sides), sp.csr_array(a[comp.upper_idx]), rows.upper[comp.upper_idx].copy(),
                                 "nonneg"))
    if {id(c) for c in program.problem.constraints} != {id(b.constraint) for b in blocks if b.constraint is not None}:
        return None
    if epigraph:
        size += 1
        blocks = [b if b.a.shape[1] == size else _Block(b.constraint, _widen(b.a, size), b.b, b.cone) for b in blocks]
    order = {"zero": 0, "nonneg": 1, "soc": 2}
    blocks.sort(key=lambda b: order[b.cone])  # stable: each cone's rows in program order
    import clarabel

    cones: list[Any] = []
    zero = sum(b.b.size for b in blocks if b.cone == "zero")
    nonneg = sum(b.b.size for b in blocks if b.cone == "nonneg")
    if zero:
        cones.append(clarabel.ZeroConeT(zero))
    if nonneg:
        cones.append(clarabel.NonnegativeConeT(nonneg))
    cones += [clarabel.SecondOrderConeT(b.b.size) for b in blocks if b.cone == "soc"]
    A = sp.vstack([b.a for b in blocks], format="csc")
    b = np.concatenate([b.b for b in blocks])
    # the objective, minimised: -S (mu' w + cash_apy c - cost' a - risk)
    q = np.zeros(size)
    q[:n] = -scale * np.asarray(program.mu.value, dtype=float)
    q[n] = -scale * cash_apy
    if cost is not None:
        if not trade:
            return None
        q[n + 1:2 * n + 1] = scale * np.asarray(cost.param.value, dtype=float)
    diag = np.zeros(size)
    if risk is not None:
        specific = risk.specific_weights
        if specific is not None:
            diag[:n] = 2 * scale * specific
        if y is not None:
            diag[y_at:y_at + k] = scale * risk.risk_aversion
    P = sp.diags_array(diag, format="csc")
    return Conic(P, q, A, b, cones, blocks, variables, program.problem, cap)


def _volatility(comp: Any, v: Any, n: int, size: int, y: Any, numbers: Any) -> list[_Block] | None:
    """``|(y, s * w)| <= sigma`` as cvxpy writes it: an epigraph variable ``t`` (the last entry of ``x``)
    with ``(t, y, s * w)`` in a second-order cone and the row ``t <= sigma``, whose multiplier is the
    constraint's dual. (Putting ``sigma`` in the cone directly saves a row but takes more iterations.)"""
    if comp.upper_idx.size != 1 or comp.lower_idx.size:
        return None
    s = np.asarray(numbers[1], dtype=float) if numbers is not None else np.zeros(n)
    k = 0 if y is None else y.size
    t = size - 1
    parts = [sp.csr_array(([-1.0], ([0], [t])), shape=(1, size))]
    if y is not None:
        parts.append(sp.csr_array((np.full(k, -1.0), (np.arange(k), np.arange(t - k, t))), shape=(k, size)))
    has_specific = bool(np.any(s > 0))
    if has_specific:
        parts.append(sp.csr_array((-s, (np.arange(n), np.arange(n))), shape=(n, size)))
    if len(parts) == 1:
        return None
    cone = sp.vstack(parts, format="csr")
    bound = sp.csr_array(([1.0], ([0], [t])), shape=(1, size))
    return [_Block(None, cone, np.zeros(cone.shape[0]), "soc"),
            _Block(comp.cvx[0], bound, np.array([float(comp.rows.upper[0])]), "nonneg")]
