r"""The solution path in risk aversion: an exact parametric QP, followed from breakpoint to breakpoint.

For a policy whose objective is linear except for the risk term and whose constraints are linear
(plus, optionally, hard volatility caps), the program cvxpy hands to Clarabel is

.. math:: \min_x \; \tfrac{\gamma}{2} x^\top H x + c^\top x
          \quad \text{s.t.} \quad A_E x = b_E, \; A_I x \le b_I

(``x`` stacks the weights, cash and every auxiliary variable; the objective is in basis points,
:data:`~bondfolio.solver.solve.OBJECTIVE_SCALE`). Divided by ``gamma`` and with ``t = 1 / gamma``
this is ``min 1/2 x'Hx + t c'x``. On a working set ``W`` (the inequality rows held at equality) the
KKT system

.. math:: \begin{bmatrix} H & C_W^\top \\ C_W & 0 \end{bmatrix}
          \begin{bmatrix} x \\ \lambda \end{bmatrix} =
          \begin{bmatrix} -t c \\ b_W \end{bmatrix}

has a solution affine in ``t``: ``(x, lambda) = u + t v``. It is the optimum for every ``t`` where
the rows outside ``W`` hold and the multipliers are ``>= 0``; where one of them reaches its bound
(a breakpoint) that row joins or leaves ``W``, and the next piece starts. :class:`SolutionPath`
follows the pieces from one verified point, so every ``t`` on the path is an exact KKT point of
the program, not an iterate of a solver's tolerance.

The linear algebra: one sparse LU of the KKT matrix of a base working set, then each change of
``W`` is a border of that matrix (a bordered Schur complement, one triangular solve per change);
after :data:`MAX_BORDER` changes the base is refactored. Variables without curvature (cash, trade
sizes, CVaR tail variables) and dependent rows would make the matrix singular, so ``H`` carries a
curvature ``eps`` on its diagonal and the rows a ``-delta`` (both ~1e-10 of the matrix's scale);
the bias this puts on the objective is computed at every point (:attr:`PathPoint.bias`) and the
rows are refined back to exact equality at every point reported.

A hard volatility cap ``sqrt(w' Sigma w) <= sigma`` is handled exactly: along the path the
variance grows with ``t``, and at any ``t`` where the capped problem binds, its optimum is the
uncapped path's point at the ``t*`` where the variance reaches ``sigma^2`` (the cap's multiplier
adds to ``gamma``: ``gamma + nu / sigma`` plays the role of the risk aversion). ``t*`` is the root
of a quadratic on its piece.

What is not on a path (fixed costs, rate-impact envelopes, conic penalties, non-linear terms
besides the risk) raises :class:`PathUnavailable` naming the reason; callers then solve each
point on its own and say so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.risk import MaxVolatility
from bondfolio.constraints.variables import Point
from bondfolio.errors import SolverError
from bondfolio.solver.solve import OBJECTIVE_SCALE

if TYPE_CHECKING:
    import cvxpy as cp
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from bondfolio.solver.program import Program
else:
    cp = lazy_module("cvxpy", globals(), "cp")
    sp = lazy_module("scipy.sparse", globals(), "sp")
    spla = lazy_module("scipy.sparse.linalg", globals(), "spla")

__all__ = ["METHOD", "PathPoint", "PathUnavailable", "SolutionPath"]

#: How records name the method of a point found on the path.
METHOD = "PATH"

#: Changes of the working set absorbed as borders before the base KKT matrix is refactored.
MAX_BORDER = 64

#: Regularization of the KKT matrix, relative to its scale (see the module docstring).
EPS = 1e-10
DELTA = 1e-13

#: Breakpoints followed before giving up (a cycling guard; real paths have a few per position).
MAX_STEPS = 200_000

#: Slack below which a row of the starting solve counts as held at equality (rows have unit norm).
ACTIVE_SLACK = 1e-8

#: Risk aversion 0 is reported at the t where the risk term is this share of the objective (see _end).
LP_GAP = 1e-8

#: KKT residuals a reported point must meet (relative to the data's scale).
KKT_TOLERANCE = 1e-8


class PathUnavailable(SolverError):
    """The program is not a parametric QP in the risk aversion (the message says why)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [])


@dataclass(frozen=True)
class PathPoint:
    """One point of the path: the allocation and its certificate."""

    risk_aversion: float
    point: Point
    objective: float
    """The program's objective (APY units), from the canonical data."""
    capped: bool
    """Whether the volatility cap binds (the point is the path's point at :attr:`effective_risk_aversion`)."""
    effective_risk_aversion: float
    kkt: dict[str, float]
    """Largest stationarity, primal and complementarity residuals (relative) and the dual sign error."""
    bias: float
    """Objective change (APY units) that the regularization ``eps`` makes at this point (an upper bound)."""
    breakpoints: int
    """Breakpoints crossed since the previous point reported."""

    @property
    def effective_t(self) -> float:
        return 1.0 / self.effective_risk_aversion if self.effective_risk_aversion > 0 else math.inf


@dataclass
class _Canonical:
    """``min (gamma/2) x'Hx + c'x + d``, ``Ae x = be``, ``Ai x <= bi`` (rows scaled to unit max norm)."""

    H: Any
    c: np.ndarray
    d: float
    Ae: Any
    be: np.ndarray
    Ai: Any
    bi: np.ndarray
    offsets: dict[str, slice]
    sense: float
    """+1: the canonical objective is the program's (minimized); -1: its negative (the program maximizes)."""


def _canonical(program: Program) -> tuple[_Canonical, list[float]]:
    """The program's QP data at ``gamma = 1`` without its volatility caps, and the caps' sigmas."""
    reasons = []
    if program.fixed_cost is not None:
        reasons.append("fixed costs choose which positions trade (a mixed-integer program)")
    if program.impact is not None:
        reasons.append("rate-impact envelopes are refined between solves")
    if not program.has_risk:
        reasons.append("the program has no risk term")
    for term, expr in program.term_expressions:
        if term.name != "risk" and not expr.is_pwl():
            reasons.append(f"objective term '{term.name}' is not piecewise linear")
    caps, sigmas = [], []
    for comp in program.compiled:
        if isinstance(comp.constraint, MaxVolatility):
            caps += comp.cvx
            sigmas.append(float(comp.rows.upper[0]))
    if reasons:
        raise PathUnavailable("; ".join(reasons))
    cap_ids = {id(c) for c in caps}
    problem = cp.Problem(program.problem.objective, [c for c in program.problem.constraints if id(c) not in cap_ids])
    own = program.risk_aversion
    program.update(risk_aversion=1.0)
    try:
        data, _chain, inverse = problem.get_problem_data(cp.CLARABEL, ignore_dpp=True)
    finally:
        program.update(risk_aversion=own)
    dims = data["dims"]
    if dims.soc or dims.exp or dims.psd or getattr(dims, "p3d", None):
        raise PathUnavailable("a constraint other than a hard volatility cap is conic")
    offsets: dict[str, slice] = {}
    var_offsets = next(inv.var_offsets for inv in inverse if hasattr(inv, "var_offsets"))
    v = program.vars
    named = [("w", v.w), ("cash", v.cash)] + ([("margin", v.margin)] if v.has_margin else [])
    for name, var in named:
        start = var_offsets[var.id]
        offsets[name] = slice(start, start + var.size)
    H = sp.csc_matrix(data["P"]) if data.get("P") is not None else sp.csc_matrix((data["c"].size,) * 2)
    H = sp.csc_matrix((H + H.T) / 2)
    A = sp.csr_matrix(data["A"])
    b = np.asarray(data["b"], dtype=float)
    me = int(dims.zero)
    Ae, be, Ai, bi = A[:me], b[:me], A[me:], b[me:]
    Ai, bi, Ae, be = _merge_opposite_rows(Ai, bi, Ae, be)
    Ai, bi = _unit_rows(Ai, bi)
    Ae, be = _unit_rows(Ae, be)
    d = float(inverse[-1][_offset_key()]) if isinstance(inverse[-1], dict) and _offset_key() in inverse[-1] else 0.0
    sense = -1.0 if isinstance(program.problem.objective, cp.Maximize) else 1.0
    return _Canonical(H, np.asarray(data["c"], dtype=float), d, sp.csr_matrix(Ae), be, sp.csr_matrix(Ai), bi,
                      offsets, sense), sigmas


def _offset_key() -> str:
    import cvxpy.settings as s

    return str(s.OFFSET)


def _unit_rows(A: Any, b: np.ndarray) -> tuple[Any, np.ndarray]:
    """Rows scaled to unit max norm (residuals and multipliers then compare across rows)."""
    if A.shape[0] == 0:
        return A, b
    scale = np.asarray(abs(A).max(axis=1).todense()).ravel()
    scale[scale == 0] = 1.0
    inv = sp.diags(1.0 / scale)
    return sp.csr_matrix(inv @ A), b / scale


def _merge_opposite_rows(Ai: Any, bi: np.ndarray, Ae: Any, be: np.ndarray) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """Pairs of inequality rows ``a x <= b`` and ``-a x <= -b`` (a two-sided row with equal bounds, e.g.
    the budget's ``invested = 1``) become one equality row: otherwise both are active and dependent."""
    Ai = sp.csr_matrix(Ai)
    Ai.sort_indices()
    seen: dict[tuple[bytes, bytes, float], int] = {}
    pairs: list[tuple[int, int]] = []
    for i in range(Ai.shape[0]):
        lo, hi = Ai.indptr[i], Ai.indptr[i + 1]
        cols, vals = Ai.indices[lo:hi].tobytes(), Ai.data[lo:hi]
        mirror = (cols, (-vals).tobytes(), float(-bi[i]))
        if mirror in seen:
            pairs.append((seen.pop(mirror), i))
        else:
            seen[(cols, vals.tobytes(), float(bi[i]))] = i
    if not pairs:
        return Ai, bi, Ae, be
    first = [i for i, _ in pairs]
    drop = np.zeros(Ai.shape[0], dtype=bool)
    drop[[i for pair in pairs for i in pair]] = True
    Ae = sp.vstack([Ae, Ai[first]]).tocsr()
    be = np.concatenate([be, bi[first]])
    keep = np.flatnonzero(~drop)
    return Ai[keep], bi[keep], Ae, be


class _Factor:
    """A sparse LU of ``K`` eliminated in a given symmetric order (threshold pivoting toward the diagonal)."""

    def __init__(self, K: Any, order: np.ndarray) -> None:
        self.order = order
        Kp = sp.csc_matrix(K[order][:, order])
        self.lu = spla.splu(Kp, permc_spec="NATURAL", diag_pivot_thresh=1e-3, options={"SymmetricMode": True})
        self.inverse = np.empty_like(order)
        self.inverse[order] = np.arange(order.size)

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self.lu.solve(b[self.order])[self.inverse]


class _Kkt:
    """The regularized KKT matrix of a working set: a base LU plus bordered Schur updates.

    The base is the matrix of working set ``W0``; a row added since is a border ``[a_i; 0]`` (its
    multiplier the border's unknown), a base row dropped since a border ``e_j`` that pins its
    multiplier to 0. With ``G = K0^{-1} V`` and ``S = V' G + D`` a solve is ``z0 = K0^{-1} r``,
    ``omega = S^{-1} (V' z0 - s)``, ``z = z0 - G omega``; ``S^{-1}`` is kept up to date by bordering.
    """

    def __init__(self, q: _Canonical, eps: np.ndarray, delta: float) -> None:
        self.q = q
        self.n = q.H.shape[0]
        self.me = q.Ae.shape[0]
        self.Heps = sp.csc_matrix(q.H + sp.diags(eps))
        self.delta = delta
        Ai = sp.csr_matrix(q.Ai)
        self.indptr, self.indices, self.data = Ai.indptr, Ai.indices, Ai.data
        self.factorizations = 0
        self._full_order: np.ndarray | None = None

    def refactor(self, W: np.ndarray, t: float) -> None:
        """Factor the matrix of working set ``W``, its rows scaled by ``s = max(1, t)``: the multipliers
        of the t-form grow like ``t``, and the scaled rows keep ``delta``'s share of them near 0."""
        q, n, me = self.q, self.n, self.me
        self.s = s = max(1.0, float(t)) if math.isfinite(t) else 1.0
        self.W = W.copy()
        self.base = np.flatnonzero(W)
        self.base_on = np.ones(self.base.size, dtype=bool)
        self.pos = np.full(q.Ai.shape[0], -1)
        self.pos[self.base] = np.arange(self.base.size)
        C = s * sp.vstack([q.Ae, q.Ai[self.base]]).tocsc()
        m = C.shape[0]
        K = sp.bmat([[self.Heps, C.T], [C, -self.delta * sp.eye(m)]], format="csc")
        self.N = n + m
        self.lu = _Factor(K, self._order(np.concatenate([np.arange(n + me), n + me + self.base])))
        self.factorizations += 1
        self.z0 = self.lu.solve(np.column_stack([np.concatenate([np.zeros(n), s * q.be, s * q.bi[self.base]]),
                                                 np.concatenate([-q.c, np.zeros(m)])]))
        self.G = np.zeros((self.N, MAX_BORDER), order="F")
        self.Sinv = np.zeros((MAX_BORDER, MAX_BORDER))
        self.VX = np.zeros((MAX_BORDER, n))  # the x-part of each border (an added row's coefficients, scaled)
        self.vpos = np.zeros(MAX_BORDER, dtype=int)  # a dropped row's multiplier slot (-1: an added row)
        self.kinds = np.zeros(MAX_BORDER, dtype=bool)  # True: an added row
        self.rows = np.zeros(MAX_BORDER, dtype=int)
        self.rhs = np.zeros((MAX_BORDER, 2))  # V' z0 - s for the u and v right-hand sides
        self.p = 0

    def _order(self, keep: np.ndarray) -> np.ndarray:
        """A fill-reducing elimination order of the working set's matrix: the minimum-degree order of the
        matrix with every row (computed once), restricted to the rows kept (a subgraph eliminated in
        the induced order fills no more than the whole graph did)."""
        if self._full_order is None:
            q = self.q
            C = sp.vstack([q.Ae, q.Ai]).tocsc()
            pattern = sp.bmat([[self.Heps, C.T], [C, sp.eye(C.shape[0])]], format="csc")
            pattern.data[:] = 1.0
            pattern = pattern + sp.eye(pattern.shape[0]) * pattern.shape[0]  # diagonally dominant: no pivoting
            lu = spla.splu(sp.csc_matrix(pattern), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
            self._full_order = np.argsort(lu.perm_c)
        where = np.full(self._full_order.size, -1)
        where[keep] = np.arange(keep.size)
        order = where[self._full_order]
        return order[order >= 0]

    @property
    def full(self) -> bool:
        return self.p >= MAX_BORDER

    def _vt(self, y: np.ndarray) -> np.ndarray:
        """``V' y`` over the border columns (``y`` of shape (N,))."""
        p = self.p
        out = self.VX[:p] @ y[: self.n]
        drop = ~self.kinds[:p]
        if drop.any():
            out[drop] = y[self.vpos[:p][drop]]
        return out

    def add(self, row: int) -> bool:
        """Row ``row`` joins the working set; False when the bordered matrix would be singular (refactor)."""
        self.W[row] = True
        if self.pos[row] >= 0:  # a base row dropped earlier: remove that border
            self.base_on[self.pos[row]] = True
            return self._remove(row, added=False)
        return self._append(row, added=True)

    def drop(self, row: int) -> bool:
        """Row ``row`` leaves the working set; False as for :meth:`add`."""
        self.W[row] = False
        if self.pos[row] >= 0:
            self.base_on[self.pos[row]] = False
            return self._append(row, added=False)
        return self._remove(row, added=True)

    def _append(self, row: int, added: bool) -> bool:
        p, n = self.p, self.n
        g = np.zeros(self.N)
        self.VX[p] = 0.0
        if added:
            lo, hi = self.indptr[row], self.indptr[row + 1]
            idx, val = self.indices[lo:hi], self.s * self.data[lo:hi]
            g[idx] = val
            self.VX[p, idx] = val
            self.vpos[p] = -1
            z_row = val @ self.z0[idx]
            self.rhs[p] = z_row - np.array([self.s * self.q.bi[row], 0.0])
        else:
            slot = n + self.me + self.pos[row]
            g[slot] = 1.0
            self.vpos[p] = slot
            self.rhs[p] = self.z0[slot]
        col = self.lu.solve(g)
        self.G[:, p] = col
        self.kinds[p], self.rows[p] = added, row
        self.p = p + 1
        vt = self._vt(col)
        b, d = vt[:p], vt[p] + (self.delta if added else 0.0)
        Sinv = self.Sinv
        u = Sinv[:p, :p] @ b
        sigma = d - b @ u
        if not abs(sigma) > 1e-12 * (abs(d) + float(np.abs(b).max(initial=0.0)) + 1e-300):
            return False
        Sinv[:p, :p] += np.outer(u, u) / sigma
        Sinv[:p, p] = Sinv[p, :p] = -u / sigma
        Sinv[p, p] = 1.0 / sigma
        return True

    def _remove(self, row: int, added: bool) -> bool:
        p = self.p
        k = int(np.flatnonzero((self.rows[:p] == row) & (self.kinds[:p] == added))[0])
        last = p - 1
        Sinv = self.Sinv
        if k != last:
            for arr in (self.G,):
                arr[:, [k, last]] = arr[:, [last, k]]
            for arr in (self.VX, self.rhs, self.vpos, self.kinds, self.rows):
                arr[[k, last]] = arr[[last, k]]
            Sinv[[k, last], :p] = Sinv[[last, k], :p]
            Sinv[:p, [k, last]] = Sinv[:p, [last, k]]
        g = Sinv[last, last]
        if g == 0:
            return False
        f = Sinv[:last, last].copy()
        Sinv[:last, :last] -= np.outer(f, f) / g
        self.p = last
        return True

    def bordered(self) -> tuple[np.ndarray, np.ndarray]:
        """``(z, omega)`` of the piece: ``z`` (N x 2) the base unknowns, ``omega`` (p x 2) the borders'."""
        p = self.p
        if not p:
            return self.z0, np.zeros((0, 2))
        omega = self.Sinv[:p, :p] @ self.rhs[:p]
        return self.z0 - self.G[:, :p] @ omega, omega

    def active(self) -> np.ndarray:
        """The active rows, in the order :meth:`multipliers` gives their multipliers."""
        p = self.p
        return np.concatenate([self.base[self.base_on], self.rows[:p][self.kinds[:p]]])

    def multipliers(self, z: np.ndarray, omega: np.ndarray) -> np.ndarray:
        """The active rows' multipliers (t-form) from a bordered solution (any trailing shape)."""
        p = self.p
        return self.s * np.concatenate([z[self.n + self.me:][self.base_on], omega[: p][self.kinds[:p]]])

    def pair(self) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """``(active rows, (x_u, mu_u, lam_u), (x_v, mu_v, lam_v))``: the piece ``u + t v``."""
        z, omega = self.bordered()
        lam = self.multipliers(z, omega)
        mu = self.s * z[self.n:self.n + self.me]
        return self.active(), (z[: self.n, 0], mu[:, 0], lam[:, 0]), (z[: self.n, 1], mu[:, 1], lam[:, 1])

    def solve(self, rx: np.ndarray, re: np.ndarray, ractive: np.ndarray) -> tuple[np.ndarray, ...]:
        """The bordered (regularized) system with right-hand side ``rx`` (stationarity), ``re``
        (equalities) and ``ractive`` (the active rows, in :meth:`active` order); returns
        ``(x, mu, lam)`` with ``lam`` in the same order."""
        nb = int(self.base_on.sum())
        rb = np.zeros(self.base.size)
        rb[self.base_on] = ractive[:nb]
        z0 = self.lu.solve(np.concatenate([rx, self.s * re, self.s * rb]))
        p = self.p
        s = np.zeros(p)
        s[self.kinds[:p]] = self.s * ractive[nb:]
        omega = self.Sinv[:p, :p] @ (self._vt(z0) - s) if p else np.zeros(0)
        z = z0 - self.G[:, :p] @ omega if p else z0
        return z[: self.n], self.s * z[self.n:self.n + self.me], self.multipliers(z, omega)


class SolutionPath:
    """The program's optimum as a function of the risk aversion (see the module docstring).

    Build with :meth:`from_program`, then take :meth:`points` at any risk aversions.
    """

    def __init__(self, program: Program, canonical: _Canonical, sigmas: list[float]) -> None:
        self.program = program
        self.q = canonical
        self.sigma = min(sigmas) if sigmas else None
        self.n = canonical.H.shape[0]
        diag = canonical.H.diagonal()
        curved = diag[diag > 0]
        self.flat = diag <= 0
        self.eps = EPS * (float(np.median(curved)) if curved.size else 1.0)
        self.kkt = _Kkt(canonical, self.eps * self.flat, DELTA)
        self.t = math.nan
        self.capped: tuple[PathPoint, np.ndarray] | None = None
        """Where the volatility cap starts to bind, once found (every larger ``t`` has this point)."""
        self.steps = 0
        self.start_seconds = 0.0
        self.start_solver_seconds = 0.0

    @property
    def started(self) -> bool:
        return math.isfinite(self.t)

    @classmethod
    def from_program(cls, program: Program) -> SolutionPath:
        """The path of ``program``'s policy; raises :class:`PathUnavailable` when it has none."""
        canonical, sigmas = _canonical(program)
        return cls(program, canonical, sigmas)

    # ------------------------------------------------------------------ start
    def start(self, risk_aversion: float) -> None:
        """Solve the uncapped program at ``risk_aversion`` once (Clarabel, cold), take the rows its
        answer holds at equality as the working set, and correct that set until its KKT point is exact."""
        import clarabel

        begin = time.perf_counter()
        q = self.q
        gamma = float(risk_aversion)
        if not gamma > 0:
            raise PathUnavailable(f"the path starts at a positive risk aversion (got {gamma})")
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        for key, value in {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "max_iter": 300}.items():
            setattr(settings, key, value)
        A = sp.vstack([q.Ae, q.Ai]).tocsc()
        b = np.concatenate([q.be, q.bi])
        cones = [clarabel.ZeroConeT(q.Ae.shape[0]), clarabel.NonnegativeConeT(q.Ai.shape[0])]
        sol = clarabel.DefaultSolver(sp.csc_matrix(sp.triu(gamma * q.H)), q.c, A, b, cones, settings).solve()
        self.start_solver_seconds = float(sol.solve_time)
        if str(sol.status) not in ("Solved", "AlmostSolved"):
            raise SolverError(f"the path's starting point (risk aversion {gamma:g}) did not solve: Clarabel "
                              f"returned {sol.status}", [])
        me = q.Ae.shape[0]
        s, z = np.asarray(sol.s)[me:], np.asarray(sol.z)[me:]
        W = (s <= ACTIVE_SLACK * (1.0 + np.abs(q.bi))) & (z > s)
        self.t = 1.0 / gamma
        self._repair(W)
        self.start_seconds = time.perf_counter() - begin

    def _repair(self, W: np.ndarray, rounds: int = 12) -> None:
        """Correct the working set at ``self.t``: violated rows join, rows with a negative multiplier
        leave, one refactorization a round."""
        q, t = self.q, self.t
        for _ in range(rounds):
            self.kkt.refactor(W, t)
            active, (xu, _, lu), (xv, _, lv) = self.kkt.pair()
            x, lam = xu + t * xv, lu + t * lv
            r = q.Ai @ x - q.bi
            violated = (~W) & (r > 1e-9)
            negative = active[lam < -1e-9 * max(1.0, float(np.abs(lam).max(initial=0.0)))]
            if not violated.any() and negative.size == 0:
                return
            W = W.copy()
            W[violated] = True
            W[negative] = False
        raise SolverError("the path's starting working set did not settle in "
                          f"{rounds} corrections: solve each point on its own", [])

    # ------------------------------------------------------------------ following
    def _follow(self, t_target: float, cap: bool) -> tuple[bool, int]:
        """Move from ``self.t`` to ``t_target`` (either way) through every breakpoint. With ``cap``, stop
        where the variance crosses the volatility cap (growing with ``t``, falling against it).
        Returns ``(stopped at the cap, breakpoints crossed)``."""
        q, kkt = self.q, self.kkt
        t = self.t
        if t_target == t:
            return False, 0
        direction = 1.0 if t_target > t else -1.0
        limit = None if self.sigma is None or not cap else OBJECTIVE_SCALE * self.sigma**2
        rhs = np.column_stack([q.bi, np.zeros_like(q.bi)])
        steps = 0
        while True:
            z, omega = kkt.bordered()
            X = z[: self.n]
            R = q.Ai @ X - rhs  # row residuals of the piece: R[:, 0] + t R[:, 1]
            lam = kkt.multipliers(z, omega)
            span, event = abs(t_target - t), None
            rv = R[:, 1] * direction
            moving = ~kkt.W & (rv > 1e-12 * float(np.abs(X[:, 1]).max(initial=0.0)))
            if moving.any():
                ahead = np.full(rv.shape, math.inf)
                np.divide(-R[:, 0] - t * R[:, 1], rv, out=ahead, where=moving)
                k = int(np.argmin(ahead))
                if ahead[k] < span:
                    span, event = max(float(ahead[k]), 0.0), ("add", k)
            lv = lam[:, 1] * direction
            falling = lv < -1e-12 * float(np.abs(lam[:, 1]).max(initial=0.0))
            if falling.any():
                ahead = np.full(lv.shape, math.inf)
                np.divide(lam[:, 0] + t * lam[:, 1], -lv, out=ahead, where=falling)
                k = int(np.argmin(ahead))
                if ahead[k] < span:
                    span, event = max(float(ahead[k]), 0.0), ("drop", int(kkt.active()[k]))
            best = t + direction * span if event is not None else t_target
            if limit is not None:
                stop = self._cap_crossing(X[:, 0], X[:, 1], t, best, direction, limit)
                if stop is not None:
                    self.t = stop
                    self.steps += steps
                    return True, steps
            if event is None:
                self.t = t_target
                self.steps += steps
                return False, steps
            t = best
            kind, row = event
            s = kkt.s
            if kkt.full or (t > 1e3 * s or (s > 1.0 and t < s / 1e3)):
                kkt.refactor(kkt.W, t)
            ok = kkt.add(row) if kind == "add" else kkt.drop(row)
            if not ok:
                kkt.refactor(kkt.W, t)
            steps += 1
            if self.steps + steps > MAX_STEPS:
                raise SolverError(f"the path crossed more than {MAX_STEPS} breakpoints: solve each point on its own",
                                  [])

    def _cap_crossing(self, xu: np.ndarray, xv: np.ndarray, t0: float, t1: float, direction: float,
                      limit: float) -> float | None:
        """Where on ``[t0, t1]`` (in the direction of travel) ``x(t)' H x(t)`` crosses ``limit``, if it does."""
        H = self.q.H
        Hu, Hv = H @ xu, H @ xv
        a, b, c = float(xu @ Hu), float(xu @ Hv), float(xv @ Hv)

        def var(t: float) -> float:
            return a + 2 * b * t + c * t * t if math.isfinite(t) else (a if c == 0 and b == 0 else math.inf)

        v0, v1 = var(t0), var(t1)
        if direction > 0:
            if v0 > limit:
                return t0
            if v1 <= limit:
                return None
        else:
            if v0 <= limit:
                return t0
            if v1 > limit:
                return None
        if c > 0:
            disc = max(b * b - c * (a - limit), 0.0)
            root = (-b + math.sqrt(disc)) / c  # the larger root: variance grows with t past its vertex
        elif b != 0:
            root = (limit - a) / (2 * b)
        else:
            return t0
        hi = t1 if math.isfinite(t1) else max(root, t0)
        return min(max(root, min(t0, hi)), max(t0, hi))

    # ------------------------------------------------------------------ points
    def _current(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x, mu, active, lam)`` at ``self.t`` in the risk-aversion form (multipliers of
        ``gamma x'Hx/2 + c'x``), refined to exact row equalities."""
        t = self.t
        gamma = 1.0 / t
        active, (xu, mu_u, lu), (xv, mu_v, lv) = self.kkt.pair()
        x, mu, lam = xu + t * xv, gamma * mu_u + mu_v, gamma * lu + lv
        q, kkt = self.q, self.kkt
        Aw = q.Ai[active]
        for _ in range(2):  # iterative refinement against the un-regularized rows
            rx = -(gamma * (kkt.Heps @ x) + q.c + q.Ae.T @ mu + Aw.T @ lam)
            re = q.be - q.Ae @ x
            ra = q.bi[active] - Aw @ x
            if max(np.abs(re).max(initial=0.0), np.abs(ra).max(initial=0.0)) < 1e-14:
                break
            # the matrix is in the t-form (multipliers t * lam): scale the correction back
            dx, dmu, dlam = kkt.solve(rx * t, re, ra)
            x, mu, lam = x + dx, mu + dmu / t, lam + dlam / t
        return x, mu, active, lam

    def _certificate(self, x: np.ndarray, mu: np.ndarray, active: np.ndarray, lam: np.ndarray,
                     gamma: float) -> dict[str, float]:
        """KKT residuals of the un-regularized program at ``gamma`` (relative to the data's scale)."""
        q = self.q
        grad = gamma * (q.H @ x) + q.c
        g = grad + q.Ae.T @ mu + q.Ai[active].T @ lam
        scale = 1.0 + float(np.abs(grad).max(initial=0.0))
        r = q.Ai @ x - q.bi
        primal = max(float(np.maximum(r, 0.0).max(initial=0.0)), float(np.abs(q.Ae @ x - q.be).max(initial=0.0)))
        return {"stationarity": float(np.abs(g).max(initial=0.0)) / scale, "primal": primal,
                "dual_sign": float(np.maximum(-lam, 0.0).max(initial=0.0)) / scale,
                "complementarity": float(np.abs(lam * r[active]).max(initial=0.0)) / scale}

    def _make(self, x: np.ndarray, gamma: float, gamma_eff: float, capped: bool, kkt: dict[str, float],
              breakpoints: int) -> PathPoint:
        q = self.q
        objective = q.sense * (0.5 * gamma * float(x @ (q.H @ x)) + float(q.c @ x) + q.d) / OBJECTIVE_SCALE
        flat = x[self.flat]
        bias = 0.5 * gamma_eff * self.eps * float(flat @ flat) / OBJECTIVE_SCALE
        off = q.offsets
        margin = float(x[off["margin"]][0]) if "margin" in off else 0.0
        point = Point(x[off["w"]].copy(), float(x[off["cash"]][0]), margin)
        return PathPoint(gamma, point, objective, capped, gamma_eff, kkt, bias, breakpoints)

    def _here(self, gamma: float, capped: bool, breakpoints: int) -> tuple[PathPoint, np.ndarray]:
        """The point at the current ``t``, reported at risk aversion ``gamma``."""
        x, mu, active, lam = self._current()
        gamma_eff = 1.0 / self.t
        kkt = self._certificate(x, mu, active, lam, gamma_eff)
        return self._make(x, gamma, gamma_eff, capped, kkt, breakpoints), x

    def _end(self, breakpoints: int) -> PathPoint:
        """Risk aversion 0, the linear program: the path's point at a ``t`` so large that the risk term
        is below ``LP_GAP`` of the objective, so the point is optimal for the linear program to within
        that (the bound is ``gamma x'Hx / 2``, recorded as ``lp_gap``)."""
        q = self.q
        steps = breakpoints
        for _ in range(8):
            _, (xu, _, _), (xv, _, _) = self.kkt.pair()
            x = xu + self.t * xv
            quad = float(x @ (q.H @ x))
            target = quad / (2 * LP_GAP * (1.0 + abs(float(q.c @ x))))
            if target <= self.t * (1 + 1e-12):
                break
            stopped, more = self._follow(target, cap=True)
            steps += more
            if stopped:
                point, x = self._here(1.0 / self.t, True, steps)
                return self._make(x, 0.0, point.effective_risk_aversion, True, point.kkt, steps)
        point, x = self._here(0.0, False, steps)
        gamma = 1.0 / self.t
        kkt = dict(point.kkt, lp_gap=0.5 * gamma * float(x @ (q.H @ x)) / (1.0 + abs(float(q.c @ x))))
        return self._make(x, 0.0, gamma, False, kkt, steps)

    def points(self, risk_aversions: list[float], start: float) -> dict[float, PathPoint]:
        """The path's points at ``risk_aversions`` (each ``>= 0``). The first call solves once at
        ``start`` (> 0); later calls go on from where the last one stopped."""
        if not self.started:
            self.start(start)
        t0 = self.t
        gammas = {1.0 / g if g > 0 else math.inf: float(g) for g in risk_aversions}
        ts = sorted(gammas)
        out: dict[float, PathPoint] = {}

        def gamma_of(t: float) -> float:
            return gammas.get(t, 1.0 / t if math.isfinite(t) else 0.0)

        def at_cap(t: float) -> PathPoint:
            assert self.capped is not None
            point, x = self.capped
            return self._make(x, gamma_of(t), point.effective_risk_aversion, True, point.kkt, 0)

        limit = None if self.sigma is None else OBJECTIVE_SCALE * self.sigma**2
        if self.capped is None and limit is not None and self._variance_here() > limit * (1 + 1e-12):
            # the cap binds here: it stops binding at a smaller t (a larger risk aversion)
            stopped, steps = self._follow(0.0, cap=True)
            if not stopped:
                raise SolverError("the volatility cap binds at every risk aversion", [])
            self.capped = self._here(gamma_of(self.t), True, steps)
            t0 = self.t
        W = self.kkt.W.copy()
        for t in (t for t in ts if t >= t0):  # toward risk aversion 0, where the cap may start to bind
            if self.capped is not None and t >= self.capped[0].effective_t:
                out[gamma_of(t)] = at_cap(t)
                continue
            stopped, steps = self._follow(t, cap=True) if math.isfinite(t) else (False, 0)
            if stopped:
                self.capped = self._here(gamma_of(self.t), True, steps)
                out[gamma_of(t)] = at_cap(t)
            elif math.isfinite(t):
                out[gamma_of(t)] = self._here(gamma_of(t), False, steps)[0]
            else:
                point = self._end(steps)
                if point.capped:
                    self.capped = (point, self._current()[0])
                out[0.0] = point
        down = sorted((t for t in ts if t < t0), reverse=True)
        if down and self.t != t0:
            self.t = t0
            self.kkt.refactor(W, t0)
        for t in down:
            _, steps = self._follow(t, cap=False)
            out[gamma_of(t)] = self._here(gamma_of(t), False, steps)[0]
        return out

    def _variance_here(self) -> float:
        _, (xu, _, _), (xv, _, _) = self.kkt.pair()
        x = xu + self.t * xv
        return float(x @ (self.q.H @ x))
