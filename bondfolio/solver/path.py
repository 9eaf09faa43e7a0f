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

When the rows split into *local* rows, each on a small block of variables (a weight with its
trade-size variable: its bounds and kink rows), and a few dozen *coupling* rows (budget, factor
definitions, group, duration, liquidity, turnover rows), the same regularized matrix is solved
through that structure instead (:class:`_BlockKkt`): the blocks are inverted one by one and the
active coupling rows enter through a small dense Schur complement, so a breakpoint costs one solve
of that size and one product over the rows, and a change of a local row touches one block. With
numba installed, that step (the piece, the ratio test, the change of a block) runs compiled
(:mod:`bondfolio.solver.path_kernels`, the backend ``"blocks (compiled)"``): the same arithmetic, the
same breakpoints, the points equal to rounding, about 4x less time a breakpoint. Which
backend a path uses is :attr:`SolutionPath.backend` (and each point's :attr:`PathPoint.backend`);
if the block backend meets a singular block or a point that fails its KKT check, the path goes on
with the sparse LU from there and says so. Either way every reported point is verified the same way.

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
from bondfolio.solver.blocks import Blocks, block_structure, merge_opposite_rows
from bondfolio.solver.solve import OBJECTIVE_SCALE

if TYPE_CHECKING:
    import cvxpy as cp
    import scipy.linalg.lapack as lapack
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from bondfolio.solver.program import Program
else:
    cp = lazy_module("cvxpy", globals(), "cp")
    lapack = lazy_module("scipy.linalg.lapack", globals(), "lapack")
    sp = lazy_module("scipy.sparse", globals(), "sp")
    spla = lazy_module("scipy.sparse.linalg", globals(), "spla")

__all__ = ["METHOD", "PathPoint", "PathUnavailable", "SolutionPath"]

#: How records name the method of a point found on the path.
METHOD = "PATH"

#: Changes of the working set absorbed as borders before the base KKT matrix is refactored.
MAX_BORDER = 64

#: The structured backend (:class:`_BlockKkt`): blocks of :mod:`bondfolio.solver.blocks` (at most
#: MAX_BLOCK variables and MAX_BLOCK_ROWS local rows, at most MAX_COUPLING coupling rows), and its
#: coupling matrices rebuilt from scratch after MAX_UPDATES changes (the low-rank updates' rounding
#: stays below ~1e-13: on the benchmarks' n = 1,000 book, 4,096 updates between rebuilds leave every
#: point's KKT residual and check as with 512).
MAX_UPDATES = 2048

#: Whether the block backend runs its breakpoint step compiled (:mod:`bondfolio.solver.path_kernels`,
#: numba) when numba is installed; its numpy code runs otherwise, or with this False. Either way the
#: same arithmetic: the same breakpoints, and points equal to rounding (``tests/solver/test_path_blocks.py``).
COMPILED = True

#: Paths with fewer blocks than this run the numpy step even with numba installed. numba's import and
#: the kernels' cached load cost ~0.7 s once per process (their first compile on a machine ~20 s, then
#: cached), and a breakpoint saves ~0.27 ms, at 2.3-2.9 breakpoints a position over a 50-point
#: frontier: a process that follows paths of this size or more gains from its second or third frontier
#: on (a sweep, the MCP server, a notebook); a one-shot frontier in a fresh process pays up to ~0.5 s
#: more at n = 200-1,000 and gains from about n = 1,200.
COMPILED_MIN_BLOCKS = 200

_kernels_module: Any = None


def _kernels() -> Any:
    """:mod:`bondfolio.solver.path_kernels`, or None when numba is not installed (imported on first use:
    numba's import and the kernels' cached load take ~0.3 s, paid only by paths on the block backend)."""
    global _kernels_module
    if _kernels_module is None:
        try:
            from bondfolio.solver import path_kernels
        except ImportError:
            _kernels_module = False
        else:
            _kernels_module = path_kernels
    return _kernels_module or None


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
    backend: str = "sparse LU"
    """The KKT backend that found the point (:attr:`SolutionPath.backend`)."""

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
    own = program.risk_aversion
    program.update(risk_aversion=1.0)
    try:
        data = _assembled(program, {id(c) for c in caps})
        if data is None:
            data = _through_cvxpy(program, {id(c) for c in caps})
    finally:
        program.update(risk_aversion=own)
    H, c, d, A, b, me, offsets = data
    H = sp.csc_matrix((H + H.T) / 2)
    Ae, be, Ai, bi = A[:me], b[:me], A[me:], b[me:]
    Ai, bi, Ae, be = merge_opposite_rows(Ai, bi, Ae, be)
    Ai, bi = _unit_rows(Ai, bi)
    Ae, be = _unit_rows(Ae, be)
    sense = -1.0 if isinstance(program.problem.objective, cp.Maximize) else 1.0
    return _Canonical(H, c, d, sp.csr_matrix(Ae), be, sp.csr_matrix(Ai), bi, offsets, sense), sigmas


_Data = tuple[Any, np.ndarray, float, Any, np.ndarray, int, dict[str, slice]]
"""``(H, c, d, A, b, m_e, offsets)``: the QP with its ``m_e`` equality rows first, as Clarabel takes it."""


def _assembled(program: Program, cap_ids: set[int]) -> _Data | None:
    """The QP data from :func:`bondfolio.solver.direct.assemble` (Clarabel's data written from the row
    families, no cvxpy canonicalization) without the volatility caps' rows and epigraph variable;
    ``None`` for a program that function does not cover."""
    from bondfolio.solver.direct import assemble

    conic = assemble(program, OBJECTIVE_SCALE)
    if conic is None:
        return None
    size = sum(var.size for var, _ in conic.variables)  # the epigraph variable of a cap, if any, is last
    keep = [blk for blk in conic.blocks if blk.cone != "soc" and id(blk.constraint) not in cap_ids]
    if any(blk.cone not in ("zero", "nonneg") for blk in keep):
        return None
    A = sp.csc_matrix(sp.vstack([blk.a for blk in keep], format="csc"))
    if A[:, size:].nnz:  # a row besides the caps' uses their epigraph variable
        return None
    A = sp.csr_matrix(A[:, :size])
    b = np.concatenate([blk.b for blk in keep]).astype(float)
    me = sum(blk.b.size for blk in keep if blk.cone == "zero")
    v = program.vars
    starts = {var.id: start for var, start in conic.variables}
    named = [("w", v.w), ("cash", v.cash)] + ([("margin", v.margin)] if v.has_margin else [])
    offsets = {name: slice(starts[var.id], starts[var.id] + var.size) for name, var in named}
    H = sp.csc_matrix(conic.P)[:size, :size]
    return H, np.asarray(conic.q, dtype=float)[:size].copy(), 0.0, A, b, me, offsets


def _through_cvxpy(program: Program, cap_ids: set[int]) -> _Data:
    """The QP data from cvxpy's canonicalization of the program without its volatility caps."""
    problem = cp.Problem(program.problem.objective, [c for c in program.problem.constraints if id(c) not in cap_ids])
    data, _chain, inverse = problem.get_problem_data(cp.CLARABEL, ignore_dpp=True)
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
    d = float(inverse[-1][_offset_key()]) if isinstance(inverse[-1], dict) and _offset_key() in inverse[-1] else 0.0
    return (H, np.asarray(data["c"], dtype=float), d, sp.csr_matrix(data["A"]), np.asarray(data["b"], dtype=float),
            int(dims.zero), offsets)


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

    The generic backend (any sparsity); :class:`_BlockKkt` takes programs with block structure.

    The base is the matrix of working set ``W0``; a row added since is a border ``[a_i; 0]`` (its
    multiplier the border's unknown), a base row dropped since a border ``e_j`` that pins its
    multiplier to 0. With ``G = K0^{-1} V`` and ``S = V' G + D`` a solve is ``z0 = K0^{-1} r``,
    ``omega = S^{-1} (V' z0 - s)``, ``z = z0 - G omega``; ``S^{-1}`` is kept up to date by bordering.
    """

    name = "sparse LU"

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

    def event(self, t: float, direction: float, span: float) -> tuple[float, tuple[str, int] | None]:
        """The current piece's first breakpoint within ``span`` of ``t`` (``direction`` +1 or -1):
        ``(distance, ("add", row))`` where a row outside the set reaches its bound, ``(distance,
        ("drop", row))`` where a multiplier reaches 0, or ``(span, None)``."""
        z, omega = self.bordered()
        X = self._X = z[: self.n]
        R = self.q.Ai @ X  # row residuals of the piece: R[:, 0] + t R[:, 1]
        R[:, 0] -= self.q.bi
        lam = self.multipliers(z, omega)
        event = None
        rv = R[:, 1] * direction
        moving = ~self.W & (rv > 1e-12 * float(np.abs(X[:, 1]).max(initial=0.0)))
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
                span, event = max(float(ahead[k]), 0.0), ("drop", int(self.active()[k]))
        return span, event

    def piece_x(self) -> np.ndarray:
        """The x-part (n x 2) of the piece :meth:`event` last looked at."""
        return self._X

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


def _gram(A: np.ndarray, B: np.ndarray, rows: int = 64) -> np.ndarray:
    """``A' B`` for tall ``A``, ``B``, summed over slices of ``rows`` rows: OpenBLAS threads one product
    of this size, and on a busy machine waking its threads costs more than the product."""
    out = np.zeros((A.shape[1], B.shape[1]))
    for i in range(0, A.shape[0], rows):
        out += A[i:i + rows].T @ B[i:i + rows]
    return out


class _BlockKkt:
    """The regularized KKT matrix of a working set, solved through its block structure.

    Unknowns are ordered block by block: each block's variables and its local rows' multipliers
    form a small quasi-definite matrix ``K_j`` (``H + eps`` on the block, the active local rows
    scaled by ``s`` with ``-delta`` on their diagonal, inactive ones decoupled); these are inverted
    one by one (batched). The active coupling rows ``D`` (a few dozen) enter through the Schur
    complement ``S = s^2 C_D Q C_D' + delta I``, ``Q`` the blocks' x-parts of ``K_j^{-1}``. The same
    matrix as :class:`_Kkt`'s, solved another way: a change of one local row changes one block and
    ``S`` by a rank of at most the block's size; a change of a coupling row changes which part of
    ``S`` is used.

    For the piece ``u + t v`` the quantities the ratio and sign tests need are affine in the active
    coupling multipliers ``z_D``: per block ``j``, ``F_j = F0_j - M_j e_j`` with one output per variable
    (its value) and one per local row (its multiplier, scaled by ``1/s``, when active; minus its
    residual when not, so that either must stay ``>= 0``), where ``e_j = C_{D,j}' z_D`` is the active
    coupling rows' pull on the block's variables and ``M_j = s (E K_j^{-1})[:, :B]``. ``M``, ``F0``
    (stored slot by slot, ``(B, P, nb)`` and ``(2, P, nb)``, so the products are vector operations
    over the blocks), ``s C Q C'`` and ``s C x0`` are kept up to date per block, so a breakpoint costs
    one ``m_D`` solve, one ``n x m_D`` product and a few operations over the blocks' outputs.
    """

    name = "blocks"

    def __init__(self, q: _Canonical, eps: np.ndarray, delta: float, blocks: Blocks) -> None:
        self.q = q
        self.kernels = _kernels() if COMPILED and blocks.var.shape[0] >= COMPILED_MIN_BLOCKS else None
        """The compiled breakpoint step (:mod:`bondfolio.solver.path_kernels`), or None: numpy's."""
        if self.kernels is not None:
            self.name = "blocks (compiled)"
        n = self.n = q.H.shape[0]
        me = self.me = q.Ae.shape[0]
        self.delta = delta
        A = sp.vstack([q.Ae, q.Ai]).tocsr()
        b = np.concatenate([q.be, q.bi])
        self.blk = blocks
        var, row = blocks.var, blocks.row
        nb, B = var.shape
        L = row.shape[1]
        self.B, self.L, self.P = B, L, B + L
        # variable -> (block, slot), local row -> (block, slot) and its position among the local rows
        self.vblk = np.empty(n, dtype=int)
        self.vslot = np.empty(n, dtype=int)
        jj, bb = np.nonzero(var >= 0)
        self.vblk[var[jj, bb]], self.vslot[var[jj, bb]] = jj, bb
        local = np.sort(row[row >= 0])
        self.local = local
        self.lpos = np.full(A.shape[0], -1)
        self.lpos[local] = np.arange(local.size)
        self.rpos = np.where(row >= 0, self.lpos[np.maximum(row, 0)], -1)  # (nb, L) -> local position
        self.cpos = np.full(A.shape[0], -1)
        coupling = blocks.coupling
        self.cpos[coupling] = np.arange(coupling.size)
        # the blocks' H (+ eps), padding variables get a 1 on the diagonal
        Heps = sp.coo_matrix(q.H + sp.diags(eps))
        self.Hb = np.zeros((nb, B, B))
        np.add.at(self.Hb, (self.vblk[Heps.row], self.vslot[Heps.row], self.vslot[Heps.col]), Heps.data)
        pj, pb = np.nonzero(var < 0)
        self.Hb[pj, pb, pb] = 1.0
        self.Heps = sp.csc_matrix(q.H + sp.diags(eps))
        # local rows' coefficients per block (nb, L, B), their bounds, which are equalities
        Al = A[local].tocoo()
        rl = local[Al.row]
        self.Cb = np.zeros((nb, L, B))
        lj = self.vblk[Al.col]
        where_l = np.empty(A.shape[0], dtype=int)
        jr, lr = np.nonzero(row >= 0)
        where_l[row[jr, lr]] = lr
        self.Cb[lj, where_l[rl], self.vslot[Al.col]] = Al.data
        self.bloc = np.where(row >= 0, b[np.maximum(row, 0)], 0.0)
        self.valid_row = row >= 0
        # coupling rows, dense
        self.coupling = coupling
        self.ceq = int(np.sum(coupling < me))  # equalities come first (rows are numbered Ae's first)
        self.C = np.asarray(A[coupling].todense())
        self.bc = b[coupling]
        self.cvals = -q.c
        self.Xpad = np.where(var >= 0, var, 0)
        self.rblk, self.rslot = np.empty(local.size, dtype=int), np.empty(local.size, dtype=int)
        self.rblk[self.rpos[jr, lr]], self.rslot[self.rpos[jr, lr]] = jr, lr
        self.eye = np.eye(self.P)
        self.vmask = var >= 0
        # the tested quantities (see the class docstring): the local rows slot by slot (slot-major:
        # index slot * nb + block), then the coupling positions
        self.nt = L * nb
        self.nx, self.nP = B * nb, self.P * nb
        rowT = row.T
        self.rowT, self.validT = rowT, rowT >= 0
        self.xmask = self.vmask.T.ravel()
        self.xidx = var.T.ravel()[self.xmask]  # variables in slot-major order (the x-part's layout)
        self.updates = 0
        self.factorizations = 0

    # ------------------------------------------------------------------ factor
    def refactor(self, W: np.ndarray, t: float) -> None:
        """Invert every block and build the coupling matrices for working set ``W``, rows scaled by
        ``s = max(1, t)`` (as :meth:`_Kkt.refactor`)."""
        self.s = s = max(1.0, float(t)) if math.isfinite(t) else 1.0
        self.W = W.copy()
        me, B, P = self.me, self.B, self.P
        act_rows = np.concatenate([np.ones(me, dtype=bool), W])
        self.act = np.where(self.valid_row, act_rows[np.maximum(self.blk.row, 0)], False)  # (nb, L)
        cact = act_rows[self.coupling]
        # columns: equalities, then active inequalities, then the rest (each ascending)
        order = np.concatenate([np.flatnonzero(cact), np.flatnonzero(~cact)])
        self.perm = order  # column position -> coupling index
        self.col = np.empty_like(order)
        self.col[order] = np.arange(order.size)
        self.mD = int(cact.sum())
        mc, nt = order.size, self.nt
        self.mc = mc
        self.CT = np.ascontiguousarray(self.C[order].T)  # (n, mc) in column order
        nb = self.Hb.shape[0]
        # the same in the blocks' layout, (mc, B * nb): entry [m, b * nb + j] is variable slot b of block j
        CTb = self.CT[self.Xpad] * self.vmask[:, :, None]
        self.CTbT = np.ascontiguousarray(CTb.transpose(2, 1, 0).reshape(mc, B * nb))
        # the coupling positions each variable slot has coefficients in (kept up to date by _swap)
        touched = np.abs(CTb).max(axis=0) > 0  # (B, mc)
        self.slot_rows = [np.flatnonzero(row) for row in touched]
        self.bcp = self.bc[order]
        # every block's matrix with all its rows active, and as the working set has it
        Kf = np.zeros((nb, P, P))
        Kf[:, :B, :B] = self.Hb
        Kf[:, B:, :B] = s * self.Cb
        Kf[:, :B, B:] = s * self.Cb.transpose(0, 2, 1)
        Kf[:, np.arange(B, P), np.arange(B, P)] = np.where(self.valid_row, -self.delta, -1.0)
        self.Kf = Kf
        on = np.concatenate([np.ones(self.blk.var.shape, dtype=bool), self.act], axis=1)
        self.K = Kf * (on[:, :, None] & on[:, None, :])
        self.K[:, np.arange(P), np.arange(P)] += np.where(on, 0.0, -1.0)
        rf = np.zeros((nb, P, 2))
        rf[:, :B, 1] = np.where(self.blk.var >= 0, self.cvals[self.Xpad], 0.0)
        rf[:, B:, 0] = s * self.bloc
        self.rf = rf
        # output rows of a block: its variables, then its local rows (multiplier or minus residual)
        self.E = np.zeros((nb, P, P))
        self.E[:, np.arange(B), np.arange(B)] = 1.0
        for_l = np.arange(B, P)
        self.E[:, for_l, for_l] = self.act
        self.E[:, B:, :B] = -self.Cb * ~self.act[:, :, None]
        self.bias = np.where(self.act, 0.0, self.bloc)
        if not self._refresh_all():
            raise np.linalg.LinAlgError("a block of the KKT matrix is singular")
        # S = s^2 C Q C' and g = s C x0, summed block by block
        Mx = self.M[:, :B, :]  # (B in, B out, nb)
        T = np.zeros((B, nb, mc))
        for p in range(B):
            for b in range(B):
                T[p] += Mx[b, p][:, None] * CTb[:, b, :]
        CTf = CTb.transpose(1, 0, 2).reshape(B * nb, mc)
        self.Sfull = s * _gram(CTf, T.reshape(B * nb, mc))
        self.Sfull = (self.Sfull + self.Sfull.T) / 2
        self.Sfull[np.arange(mc), np.arange(mc)] += self.delta  # S + delta I, as the solves take it
        # g = s C x0 less the rows' bounds (s b, on the u side): the active rows' right-hand side
        self.g = s * _gram(CTf, self.F0[:, :B, :].reshape(2, B * nb).T)
        self.g[:, 0] -= s * self.bcp
        # the tested rows: weights of the two tolerances, rows never tested, their Ai indices
        self.wl = np.zeros(nt + mc)
        self.big = np.zeros(nt + mc)
        self.wl[:nt] = (self.validT & (self.rowT >= me) & self.act.T).ravel()
        self.big[:nt] = np.where(self.validT & (self.rowT >= me), 0.0, 1e300).ravel()
        self.rid = np.concatenate([(self.rowT - me).ravel(), self.coupling[order] - me])
        self.Fbuf = np.zeros((2, self.nP + mc))
        self._out = self.Fbuf[:, : self.nP].reshape(2, P, nb)  # a view: the blocks' outputs
        self._coupling_rows()
        self._uses()
        self.updates = 0
        self.factorizations += 1

    def _refresh_all(self) -> bool:
        """Invert every block; ``M`` (B in, P out, nb) and ``F0`` (2, P out, nb) in slot-major layout."""
        s, B = self.s, self.B
        try:
            Ki = np.linalg.inv(self.K)
        except np.linalg.LinAlgError:
            return False
        if not np.isfinite(Ki).all():
            return False
        self.Kinv = Ki
        on = np.concatenate([np.ones(self.blk.var.shape, dtype=bool), self.act], axis=1)
        EK = self.E @ Ki
        self.M = np.ascontiguousarray((s * EK[:, :, :B]).transpose(2, 1, 0))
        self.rfon = self.rf * on[:, :, None]  # the right-hand sides with the inactive local rows' zeroed
        F0 = EK @ self.rfon
        F0[:, B:, 0] += self.bias
        self.F0 = np.ascontiguousarray(F0.transpose(2, 1, 0))
        return True

    def _refresh(self, j: int, slot: int, on_: bool) -> bool:
        """Block ``j`` with its local row ``slot`` switched on or off: invert it again and keep its new
        ``M`` and ``F0`` columns (``self._new``; False if it is singular)."""
        s, B = self.s, self.B
        K, i = self.K[j], B + slot
        E = self.E[j]
        if on_:
            K[i, :B], K[:B, i], K[i, i] = self.Kf[j, i, :B], self.Kf[j, :B, i], -self.delta
            E[i, :B], E[i, i], self.bias[j, slot] = 0.0, 1.0, 0.0
        else:
            K[i, :B], K[:B, i], K[i, i] = 0.0, 0.0, -1.0
            E[i, :B], E[i, i], self.bias[j, slot] = -self.Cb[j, slot], 0.0, self.bloc[j, slot]
        _, _, Ki, info = lapack.dgesv(K, self.eye)
        if info != 0 or not math.isfinite(float(Ki.sum())):
            return False
        self.Kinv[j] = Ki
        EK = E @ Ki
        self.rfon[j, i] = self.rf[j, i] if on_ else 0.0
        F0 = EK @ self.rfon[j]
        F0[B:, 0] += self.bias[j]
        self._new = (s * EK[:, :B], F0)
        return True

    def _coupling_rows(self) -> None:
        """Which coupling positions are tested as multipliers (the active inequalities) and which not at
        all (the equalities); see :meth:`_piece` for their values."""
        mD, mc, nt = self.mD, self.mc, self.nt
        pos = np.arange(mc)
        self.wl[nt:] = (pos >= self.ceq) & (pos < mD)
        self.big[nt:] = np.where(pos < self.ceq, 1e300, 0.0)

    @property
    def full(self) -> bool:
        return self.updates >= MAX_UPDATES

    # ------------------------------------------------------------------ changes
    def add(self, row: int) -> bool:
        """Row ``row`` (of ``Ai``) joins the working set; False when its block turned singular."""
        self.W[row] = True
        return self._change(row, True)

    def drop(self, row: int) -> bool:
        """Row ``row`` leaves the working set; False as for :meth:`add`."""
        self.W[row] = False
        return self._change(row, False)

    def _change(self, row: int, on: bool) -> bool:
        r = self.me + row
        c = int(self.cpos[r])
        self.updates += 1
        if c >= 0:
            self._swap(int(self.col[c]), self.mD if on else self.mD - 1)
            self.mD += 1 if on else -1
            self._coupling_rows()
            self._uses()
            return True
        k = int(self.lpos[r])
        j, slot = int(self.rblk[k]), int(self.rslot[k])
        self.act[j, slot] = on
        self.wl[slot * self.Hb.shape[0] + j] = 1.0 if on else 0.0
        if self.kernels is not None:
            return bool(self.kernels.change_local(
                self.K, self.Kf, self.E, self.Cb, self.bias, self.bloc, self.rf, self.rfon, self.Kinv, self.M,
                self.F0, self.Sfull, self.g, self.CTbT, self.eye, j, slot, on, self.s, self.delta))
        B = self.B
        if not self._refresh(j, slot, on):
            return False
        m, f = self._new
        ct = self.CTbT[:, j::self.Hb.shape[0]]  # (mc, B): block j's variables' coupling coefficients
        ct_s = self.s * ct
        self.Sfull += ct_s @ ((m[:B] - self.M[:, :B, j].T) @ ct.T)  # (B out, B in) before and after
        self.g += ct_s @ (f[:B] - self.F0[:, :B, j].T)
        self.M[:, :, j] = m.T
        self.F0[:, :, j] = f.T
        return True

    def _swap(self, a: int, b: int) -> None:
        """Swap coupling columns ``a`` and ``b`` (keeps the active ones first)."""
        if a == b:
            return
        ab, ba = [a, b], [b, a]
        self.CTbT[ab] = self.CTbT[ba]
        self.CT[:, ab] = self.CT[:, ba]
        self.Sfull[ab] = self.Sfull[ba]
        self.Sfull[:, ab] = self.Sfull[:, ba]
        for arr in (self.g, self.bcp, self.perm):
            arr[ab] = arr[ba]
        nt = self.nt
        self.rid[[nt + a, nt + b]] = self.rid[[nt + b, nt + a]]
        self.col[self.perm[ab]] = ab
        for i, rows in enumerate(self.slot_rows):
            moved = rows.copy()
            moved[rows == a], moved[rows == b] = b, a
            self.slot_rows[i] = np.sort(moved)

    # ------------------------------------------------------------------ solutions
    def _zD(self, rhs: np.ndarray) -> np.ndarray:
        mD = self.mD
        if not mD:
            return np.zeros((0, rhs.shape[1]))
        _, z, info = lapack.dposv(self.Sfull[:mD, :mD], rhs)
        if info != 0:
            z = np.linalg.solve(self.Sfull[:mD, :mD], rhs)
        return np.asarray(z)

    def _piece(self) -> tuple[np.ndarray, np.ndarray]:
        """``(F, z_D)`` of the current piece: ``F`` (2 x (P nb + mc)) the blocks' outputs slot by slot
        (the variables' values, then the local rows'), then the coupling positions' values (see the
        class docstring)."""
        mD, B, s = self.mD, self.B, self.s
        if self.kernels is not None:
            zD = self.kernels.piece(self.M, self.F0, self.CTbT, *self._used_csr, self.Sfull, self.g, mD, s,
                                    self.Fbuf)
            return self.Fbuf, zD
        zD = self._zD(self.g[:mD])
        F, out, nP = self.Fbuf, self._out, self.nP
        M = self.M
        if mD:
            e = self._pull(zD)
            np.multiply(M[0], e[:, 0, None, :], out=out)
            for b in range(1, B):
                out += M[b] * e[:, b, None, :]
            np.subtract(self.F0, out, out=out)
        else:
            out[...] = self.F0
        # the coupling positions: an active row's multiplier is z_D itself, an inactive row's value
        # -(C x - b) = (z_D' S_DI - g_I') / s follows from S and g
        F[:, nP:nP + mD] = zD.T
        F[:, nP + mD:] = zD.T @ self.Sfull[mD:, :mD].T
        F[:, nP + mD:] -= self.g[mD:].T
        F[:, nP + mD:] *= 1.0 / s
        return F, zD

    def _pull(self, zD: np.ndarray) -> np.ndarray:
        """``C_D' z_D`` in the blocks' layout, ``(2, B, nb)``: the active coupling rows' pull on each
        variable. A slot that few coupling rows touch (a trade size: the turnover row) takes only those."""
        mD, nb = self.mD, self.Hb.shape[0]
        e = np.empty((2, self.B, nb))
        for b, used in enumerate(self._used):
            cols = self.CTbT[:, b * nb:(b + 1) * nb]
            if used is None:
                e[:, b] = zD.T @ cols[:mD]
            else:
                e[:, b] = zD[used].T @ cols[used]
        return e

    def _uses(self) -> None:
        """Which active coupling positions each slot's pull takes (``None``: all of them, a prefix)."""
        mD = self.mD
        self._used: list[np.ndarray | None] = []
        for rows in self.slot_rows:
            used = rows[rows < mD]
            self._used.append(used if 2 * used.size < mD else None)
        if self.kernels is not None:  # the same as flags and one index array (path_kernels.piece)
            some = [np.zeros(0, dtype=np.int64) if u is None else u.astype(np.int64) for u in self._used]
            self._used_csr = (np.array([u is None for u in self._used]),
                              np.concatenate([[0], np.cumsum([u.size for u in some])]).astype(np.int64),
                              np.concatenate(some))

    def event(self, t: float, direction: float, span: float) -> tuple[float, tuple[str, int] | None]:
        """As :meth:`_Kkt.event`."""
        if self.kernels is not None:
            ahead, k = self.kernels.event(self.M, self.F0, self.CTbT, *self._used_csr, self.Sfull, self.g, self.mD,
                                          self.s, self.Fbuf, self.nx, self.wl, self.big, t, direction)
            if not ahead < span:
                return span, None
            return max(ahead, 0.0), ("drop" if self.wl[k] else "add", int(self.rid[k]))
        F, _ = self._piece()
        xv = F[1, : self.nx]
        tol_x = 1e-12 * max(float(xv.max()), -float(xv.min()))
        tested = F[:, self.nx:]
        Fv = tested[1]
        wl = self.wl
        tol_l = 1e-12 * float((np.abs(Fv) * wl).max(initial=0.0))
        # candidates: rows whose value (a multiplier or minus a residual, both >= 0) falls faster
        # than the tolerance of their kind, in the direction of travel
        thr = wl * (tol_l - tol_x)
        if direction > 0:
            thr += Fv
        else:
            thr -= Fv
        thr += self.big
        cand = thr < -tol_x
        ahead = np.full(Fv.shape, math.inf)
        num = Fv * (-t if direction > 0 else t)
        if direction > 0:
            num -= tested[0]  # -(F0 + t Fv), over Fv: the distance (F0 + t Fv) / (-rate)
        else:
            num += tested[0]
        np.divide(num, Fv, out=ahead, where=cand)
        k = int(np.argmin(ahead))
        if not ahead[k] < span:
            return span, None
        return max(float(ahead[k]), 0.0), ("drop" if wl[k] else "add", int(self.rid[k]))

    def piece_x(self) -> np.ndarray:
        X = np.zeros((self.n, 2))
        X[self.xidx] = self.Fbuf[:, : self.nx][:, self.xmask].T
        return X

    def active(self) -> np.ndarray:
        """The active rows (of ``Ai``), ascending (the order of :meth:`pair`'s multipliers)."""
        return np.flatnonzero(self.W)

    def _unpack(self, F: np.ndarray, zD: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, mu, lam)`` (t-form multipliers; ``lam`` over :meth:`active`) from ``(F, z_D)``."""
        me, s = self.me, self.s
        z = np.zeros((me + self.W.size, 2))
        actT = self.act.T
        z[self.rowT[actT]] = self._out[:, self.B:, :][:, actT].T
        z[self.coupling[self.perm[: self.mD]]] = zD
        z *= s
        return self.piece_x(), z[:me], z[me:][self.W]

    def pair(self) -> tuple[np.ndarray, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """As :meth:`_Kkt.pair`."""
        F, zD = self._piece()
        x, mu, lam = self._unpack(F, zD)
        return self.active(), (x[:, 0], mu[:, 0], lam[:, 0]), (x[:, 1], mu[:, 1], lam[:, 1])

    def solve(self, rx: np.ndarray, re: np.ndarray, ractive: np.ndarray) -> tuple[np.ndarray, ...]:
        """As :meth:`_Kkt.solve` (``ractive`` in :meth:`active` order)."""
        s, B, n, me, mD = self.s, self.B, self.n, self.me, self.mD
        r = np.zeros(me + self.W.size)
        r[:me] = re
        r[me:][self.W] = ractive
        var, rows = self.blk.var, self.blk.row
        rb = np.zeros((var.shape[0], self.P))
        rb[:, :B] = np.where(var >= 0, rx[self.Xpad], 0.0)
        rb[:, B:] = np.where(self.act, s * r[np.maximum(rows, 0)], 0.0)
        y = np.einsum("jpq,jq->jp", self.Kinv, rb)
        xy = np.zeros(n)
        xy[var[var >= 0]] = y[:, :B][var >= 0]
        zD = self._zD((s * (self.CT[:, :mD].T @ xy) - s * r[self.coupling[self.perm[:mD]]])[:, None])[:, 0]
        e = s * (self.CT[:, :mD] @ zD)
        eb = np.where(var >= 0, e[self.Xpad], 0.0)
        z = y - np.einsum("jpb,jb->jp", self.Kinv[:, :, :B], eb)
        x = np.zeros(n)
        x[var[var >= 0]] = z[:, :B][var >= 0]
        out = np.zeros(me + self.W.size)
        rj, rl = np.nonzero(self.act)
        out[rows[rj, rl]] = z[rj, B + rl]
        out[self.coupling[self.perm[:mD]]] = zD
        out *= s
        return x, out[:me], out[me:][self.W]


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
        # every row, equalities first, and its transpose: one product each for the residuals
        self.A = sp.csr_matrix(sp.vstack([canonical.Ae, canonical.Ai]))
        self.AT = sp.csr_matrix(self.A.T)
        self.b = np.concatenate([canonical.be, canonical.bi])
        self.eps = EPS * (float(np.median(curved)) if curved.size else 1.0)
        blocks = block_structure(canonical.H, canonical.Ae, canonical.Ai)
        self.kkt: _Kkt | _BlockKkt = (_Kkt(canonical, self.eps * self.flat, DELTA) if blocks is None else
                                      _BlockKkt(canonical, self.eps * self.flat, DELTA, blocks))
        self.fallback: str | None = None
        """Why the structured backend gave way to the generic one, if it did (see :attr:`backend`)."""
        self.block_name = self.kkt.name if isinstance(self.kkt, _BlockKkt) else _BlockKkt.name
        self.t = math.nan
        self.capped: tuple[PathPoint, np.ndarray] | None = None
        """Where the volatility cap starts to bind, once found (every larger ``t`` has this point)."""
        self.steps = 0
        self.start_seconds = 0.0
        self.start_solver_seconds = 0.0

    @property
    def backend(self) -> str:
        """How the KKT systems are solved: ``"blocks"`` (:class:`_BlockKkt`, for programs whose rows
        split into small blocks and a few coupling rows; ``"blocks (compiled)"`` with its breakpoint
        step in :mod:`bondfolio.solver.path_kernels`, see :data:`COMPILED`) or ``"sparse LU"``
        (:class:`_Kkt`), with the fallback from the first to the second, if one happened."""
        if self.fallback is None:
            return self.kkt.name
        return f"{self.block_name}, then {_Kkt.name} ({self.fallback})"

    def _refactor(self, W: np.ndarray, t: float) -> _Kkt | _BlockKkt:
        try:
            self.kkt.refactor(W, t)
        except np.linalg.LinAlgError:
            self._fallback(W, t, "a singular block")
        return self.kkt

    def _recover(self, t: float, reason: str) -> _Kkt | _BlockKkt:
        """After a failed change of the working set: refactor, or leave the structured backend."""
        if isinstance(self.kkt, _BlockKkt):
            self._fallback(self.kkt.W, t, reason)
            return self.kkt
        return self._refactor(self.kkt.W, t)

    def _fallback(self, W: np.ndarray, t: float, reason: str) -> None:
        """Go on with the generic backend from working set ``W`` at ``t``."""
        self.fallback = f"{reason} at risk aversion {1.0 / t if t > 0 else math.inf:.6g}"
        self.kkt = _Kkt(self.q, self.eps * self.flat, DELTA)
        self.kkt.refactor(W.copy(), t)

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
            self._refactor(W, t)
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
        kkt = self.kkt
        t = self.t
        if t_target == t:
            return False, 0
        direction = 1.0 if t_target > t else -1.0
        limit = None if self.sigma is None or not cap else OBJECTIVE_SCALE * self.sigma**2
        steps = 0
        while True:
            span, event = kkt.event(t, direction, abs(t_target - t))
            best = t + direction * span if event is not None else t_target
            if limit is not None:
                X = kkt.piece_x()
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
                kkt = self._refactor(kkt.W, t)
            ok = kkt.add(row) if kind == "add" else kkt.drop(row)
            if not ok:
                kkt = self._recover(t, "a singular block")
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
        me = q.Ae.shape[0]
        y = np.zeros(self.b.size)  # the multipliers: the equalities', then the active rows', zero elsewhere
        for _ in range(2):  # iterative refinement against the un-regularized rows
            y[:me] = mu
            y[me + active] = lam
            rx = -(gamma * (kkt.Heps @ x) + q.c + self.AT @ y)
            r = self.b - self.A @ x
            re, ra = r[:me], r[me + active]
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
        me = q.Ae.shape[0]
        y = np.zeros(self.b.size)
        y[:me] = mu
        y[me + active] = lam
        g = grad + self.AT @ y
        scale = 1.0 + float(np.abs(grad).max(initial=0.0))
        rows = self.A @ x - self.b
        r = rows[me:]
        primal = max(float(np.maximum(r, 0.0).max(initial=0.0)), float(np.abs(rows[:me]).max(initial=0.0)))
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
        return PathPoint(gamma, point, objective, capped, gamma_eff, kkt, bias, breakpoints, self.kkt.name)

    def _here(self, gamma: float, capped: bool, breakpoints: int) -> tuple[PathPoint, np.ndarray]:
        """The point at the current ``t``, reported at risk aversion ``gamma``."""
        x, mu, active, lam = self._current()
        gamma_eff = 1.0 / self.t
        kkt = self._certificate(x, mu, active, lam, gamma_eff)
        worst = max(kkt.values())
        if not worst <= KKT_TOLERANCE and isinstance(self.kkt, _BlockKkt):
            self._fallback(self.kkt.W, self.t, f"a point's KKT residual was {worst:.2g}")
            return self._here(gamma, capped, breakpoints)
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
            self._refactor(W, t0)
        for t in down:
            _, steps = self._follow(t, cap=False)
            out[gamma_of(t)] = self._here(gamma_of(t), False, steps)[0]
        return out

    def _variance_here(self) -> float:
        _, (xu, _, _), (xv, _, _) = self.kkt.pair()
        x = xu + self.t * xv
        return float(x @ (self.q.H @ x))
