r"""A block-structured primal-dual interior point for factor-model books (the solver ``BLOCK_IPM``).

The program a large book makes (:mod:`bondfolio.solver.direct`) is

.. math:: \min_x \; \tfrac12 x^\top P x + q^\top x \quad \text{s.t.} \quad
          E x = f, \quad G x \le h, \quad \tfrac12 x^\top Q x \le \tfrac12

with ``P`` and ``Q`` diagonal (factor exposures ``y = R' w`` are variables, so the factor model's
curvature is diagonal too; ``Q`` is the volatility cap ``|y|^2 + |s * w|^2 <= sigma^2`` divided by
``sigma^2``, if the policy has one). Its rows split into *local* rows, each on one small block of
variables (a weight and its trade size: the bounds and the two kink rows), and a few dozen *coupling*
rows (factor definitions, budget, groups, duration, liquidity, turnover, the volatility cap); the
split is :func:`bondfolio.solver.blocks.block_structure`, the one the solution path uses.

Each iteration is a Mehrotra predictor-corrector step on the KKT conditions

.. math:: Px + q + G^\top z + E^\top \nu + z_Q Q x = 0, \quad Gx + s = h, \quad
          \tfrac12 x^\top Q x + s_Q = \tfrac12, \quad Ex = f, \quad s \circ z = \mu e,
          \quad s, z \ge 0.

The Newton system is solved through the structure: the local rows are eliminated into block-diagonal
matrices ``M_j = (P + z_Q Q + G_L' (z/s) G_L)_j`` (inverted in closed form, all blocks at once), the
coupling rows ``C`` enter through the dense Schur complement ``C M^{-1} C' + D`` (a few dozen rows
square, Cholesky), and iterative refinement on the unreduced system keeps the residual at rounding
level. An iteration costs a few products over ``n x (coupling rows)`` numbers, against a sparse LDL
of the whole KKT matrix in a general conic solver: at n = 10,000 this is about 5x less time per
iteration than Clarabel at the same tolerances (``benchmarks/bench_allocate.py``).

The stopping rule is Clarabel's: primal and dual residuals below ``tol_feas`` relative to the data,
and a duality gap below ``tol_gap_abs`` or ``tol_gap_rel`` of the objective. A problem the method
cannot finish (iteration limit, a stalled step, a singular system, an infeasible or unbounded
program, which it does not certify) ends with a status other than ``"optimal"``; the caller then
tries the next solver of the order and records why (:func:`bondfolio.solver.solve.solve_once`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bondfolio._lazy import lazy_module

if TYPE_CHECKING:
    import scipy.linalg as la
    import scipy.sparse as sp
else:
    la = lazy_module("scipy.linalg", globals(), "la")
    sp = lazy_module("scipy.sparse", globals(), "sp")

__all__ = ["NAME", "Result", "Structure", "solve"]

#: The solver's name in a policy's ``[solver] order`` and in records.
NAME = "BLOCK_IPM"

#: Fraction of the step to the boundary taken (Clarabel's default).
STEP_FRACTION = 0.99

#: Iterative refinement on the unreduced Newton system: at most this many steps, stopping once the
#: residual is below REFINE_TOLERANCE of the right-hand side or stops halving.
REFINE_STEPS = 8
REFINE_TOLERANCE = 1e-13

#: Regularization of the Schur complement's equality rows, relative to its largest diagonal entry
#: (their ``D`` is zero; refinement removes the bias this puts on a step).
SCHUR_DELTA = 1e-14

#: Curvature added to every block's diagonal for its factorization only, relative to that block's
#: largest diagonal entry (a variable without curvature or local rows would make its block singular);
#: the refinement solves the unregularized system.
PRIMAL_DELTA = 1e-13

#: Steps shorter than this count as a stall; STALL_LIMIT of them in a row end the solve.
MIN_STEP = 1e-10
STALL_LIMIT = 5

#: Iterates larger than this (infinity norm, relative to the data) mean the program is infeasible or
#: unbounded: the method stops and the next solver certifies which.
DIVERGED = 1e12


@dataclass
class Structure:
    """The program in the solver's form, split into blocks of at most two variables and coupling rows.

    Rows are numbered as the solver sees them: the inequality rows ``G`` (local and coupling), then
    the cap (if any), then the equality rows ``E``.
    """

    P: np.ndarray
    """Diagonal of ``P`` (length N)."""
    q: np.ndarray
    E: Any
    """Equality rows (csr, mE x N)."""
    f: np.ndarray
    G: Any
    """Inequality rows (csr, mG x N)."""
    h: np.ndarray
    Q: np.ndarray | None
    """Diagonal of the cap's ``Q`` (``1/2 x'Qx <= 1/2``), or None without a cap."""
    v0: np.ndarray
    """(blocks,): each block's first variable."""
    v1: np.ndarray
    """(blocks,): each block's second variable, -1 for a block of one."""
    rows: np.ndarray
    """(blocks, L): each block's local inequality rows, -1 padding."""
    a0: np.ndarray
    """(blocks, L): those rows' coefficients on the block's first variable (0 padding)."""
    a1: np.ndarray
    """(blocks, L): and on its second."""
    coupling: np.ndarray
    """Row numbers of the coupling rows: coupling inequality rows, the cap, the equality rows."""
    C0: np.ndarray
    """(blocks, K): the coupling rows' coefficients on each block's first variable (the cap's column,
    :attr:`cap_column`, is filled in at each iterate)."""
    C1: np.ndarray
    """(blocks, K): and on its second (0 for blocks of one)."""
    kept: np.ndarray
    """Which of the given inequality rows are ``G``'s rows."""
    merged: np.ndarray
    """(pairs, 2): given inequality rows ``a x <= b`` and ``-a x <= -b`` (a two-sided row with equal
    bounds, such as the budget), solved as one equality row each, appended to ``E`` in this order:
    held from both sides, the pair would make the coupling system singular."""
    given_e: int
    given_g: int

    def __post_init__(self) -> None:
        held = self.rows >= 0
        #: the local rows as a list: row number, block, coefficients on the block's two variables
        self.lrow, self.lblk = self.rows[held], np.nonzero(held)[0]
        self.la0, self.la1 = self.a0[held], self.a1[held]
        #: (blocks, L): each block's local rows as positions in that list (its length: padding)
        self.slot = np.full(self.rows.shape, self.lrow.size)
        self.slot[held] = np.arange(self.lrow.size)
        #: the coupling columns with an entry on some block's second variable (few: the turnover row)
        self.c1 = np.flatnonzero(np.any(self.C1 != 0, axis=0) | (np.arange(self.C1.shape[1]) == self.cap_column)
                                 if self.Q is not None else np.any(self.C1 != 0, axis=0))
        self.C1c = np.ascontiguousarray(self.C1[:, self.c1])
        self.nb = self.v0.size
        self.two = self.v1 >= 0
        self.v1safe = np.maximum(self.v1, 0)
        self.v1two = self.v1[self.two]

    @property
    def m(self) -> int:
        """Rows in all: inequality rows, the cap, equality rows."""
        return self.G.shape[0] + (self.Q is not None) + self.E.shape[0]

    @property
    def cap_column(self) -> int:
        return int(np.sum(self.coupling < self.G.shape[0]))

    @classmethod
    def of(cls, P: np.ndarray, q: np.ndarray, E: Any, f: np.ndarray, G: Any, h: np.ndarray,
           Q: np.ndarray | None) -> Structure | None:
        """The structure of a program, or None when it has none this solver is written for: blocks of
        more than two variables, or more coupling rows than :data:`bondfolio.solver.blocks.MAX_COUPLING`
        (the split is :func:`bondfolio.solver.blocks.block_structure`; the cap is a coupling row)."""
        from bondfolio.solver.blocks import MAX_COUPLING, block_structure, opposite_pairs

        E, G = sp.csr_array(E), sp.csr_array(G)
        G.sort_indices()
        given_e, given_g = E.shape[0], G.shape[0]
        # opposite pairs among the rows of more than two entries (coupling rows; a pair within a block is harmless)
        merged = np.array(opposite_pairs(G, h, np.flatnonzero(np.diff(G.indptr) > 2)), dtype=int).reshape(-1, 2)
        kept = np.arange(given_g)
        if merged.size:
            drop = np.zeros(given_g, dtype=bool)
            drop[merged.ravel()] = True
            kept = np.flatnonzero(~drop)
            E = sp.csr_array(sp.vstack([E, G[merged[:, 0]]]))
            f = np.concatenate([f, h[merged[:, 0]]])
            G, h = G[kept], h[kept]
        n, mE, mG = q.size, E.shape[0], G.shape[0]
        blocks = block_structure(sp.diags_array(np.asarray(P, float)).tocsc(), E, G)
        if blocks is None or blocks.var.shape[1] > 2:
            return None
        var = blocks.var
        if (np.sort(var[var >= 0]) != np.arange(n)).any():
            return None
        held = blocks.row >= 0
        if (blocks.row[held] < mE).any():
            return None  # an equality row came out local: every equality row is a coupling row here
        rows = np.where(held, blocks.row - mE, -1)
        v0 = var[:, 0]
        v1 = var[:, 1] if var.shape[1] == 2 else np.full(v0.size, -1)
        # each local row's coefficients on its block's two variables
        b_of = np.nonzero(held)[0]
        local = G[rows[held]]
        a0 = np.zeros(rows.shape)
        a1 = np.zeros(rows.shape)
        a0[held] = np.asarray(local[np.arange(b_of.size), v0[b_of]]).ravel()
        a1[held] = np.where(v1[b_of] >= 0, np.asarray(local[np.arange(b_of.size), np.maximum(v1[b_of], 0)]).ravel(),
                            0.0)
        is_local = np.zeros(mG, dtype=bool)
        is_local[rows[held]] = True
        coupling_g = np.flatnonzero(~is_local)
        cap = Q is not None
        coupling = np.concatenate([coupling_g, [mG] if cap else [], mG + cap + np.arange(mE)]).astype(int)
        if coupling.size > MAX_COUPLING:
            return None
        parts = [G[coupling_g].toarray()]
        if cap:
            parts.append(np.zeros((1, n)))
        parts.append(E.toarray())
        Ck = np.vstack(parts)  # K x N
        C0 = np.ascontiguousarray(Ck.T[v0])
        C1 = np.where((v1 >= 0)[:, None], Ck.T[np.maximum(v1, 0)], 0.0)
        return cls(np.asarray(P, float), np.asarray(q, float), E, np.asarray(f, float), G, np.asarray(h, float),
                   None if Q is None else np.asarray(Q, float), v0, v1, rows, a0, a1, coupling, C0,
                   np.ascontiguousarray(C1), kept, merged, given_e, given_g)

    def multipliers(self, z: np.ndarray, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The multipliers of the rows as given to :meth:`of` (inequality rows, equality rows) from the
        solver's: a merged pair's equality multiplier splits into its two rows' (one of them zero)."""
        zg = np.zeros(self.given_g)
        zg[self.kept] = z
        tail = nu[self.given_e:]
        zg[self.merged[:, 0]] = np.maximum(tail, 0.0)
        zg[self.merged[:, 1]] = np.maximum(-tail, 0.0)
        return zg, nu[:self.given_e].copy()

    def set_cap_gradient(self, grad: np.ndarray) -> None:
        """Put the cap's gradient ``Qx`` in its coupling column."""
        j = self.cap_column
        self.C0[:, j] = grad[self.v0]
        where = np.flatnonzero(self.c1 == j)
        if where.size:
            self.C1c[:, where[0]] = np.where(self.v1 >= 0, grad[np.maximum(self.v1, 0)], 0.0)

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x`` (length N) by block: its first and second variables (0 for blocks of one)."""
        x1 = x[self.v1safe]
        x1[~self.two] = 0.0
        return x[self.v0], x1

    def join(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        out = np.empty(self.q.size)
        out[self.v0] = x0
        out[self.v1two] = x1[self.two]
        return out

    def times(self, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        """Every row times ``x`` (given by block; the cap's row is its current gradient)."""
        out = np.empty(self.m)
        out[self.lrow] = self.la0 * x0[self.lblk] + self.la1 * x1[self.lblk]
        yk = self.C0.T @ x0
        yk[self.c1] += self.C1c.T @ x1
        out[self.coupling] = yk
        return out

    def transpose_times(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows' transpose times ``y`` (length :attr:`m`), by block."""
        yl = y[self.lrow]
        yk = y[self.coupling]
        t0 = np.bincount(self.lblk, self.la0 * yl, self.nb) + self.C0 @ yk
        t1 = np.bincount(self.lblk, self.la1 * yl, self.nb) + self.C1c @ yk[self.c1]
        return t0, t1


@dataclass
class Result:
    """The answer of :func:`solve`."""

    status: str
    """``"optimal"``, or why not: ``"max_iterations"``, ``"stalled"``, ``"diverged"``, ``"singular"``."""
    x: np.ndarray
    z: np.ndarray
    """Multipliers of the inequality rows (``>= 0``)."""
    nu: np.ndarray
    """Multipliers of the equality rows."""
    z_cap: float
    """Multiplier of the cap ``1/2 x'Qx <= 1/2`` (0 without one)."""
    iterations: int
    seconds: float
    objective: float
    """``1/2 x'Px + q'x`` at ``x``."""
    residuals: dict[str, float] = field(default_factory=dict)
    """The last iterate's primal and dual residuals and gap, as the stopping rule measured them."""
    detail: str = ""
    """Why the solve ended early, in words (empty for an optimal one)."""


class _Newton:
    """The Newton system at one iterate, factored through the blocks and the coupling rows.

    Solves ``[H, C'; C, -D] [dx; dy] = [r1; r2]`` with ``H = P + z_Q Q``, ``C`` every row (the cap's
    row is its gradient ``(Qx)'``) and ``D = s / z`` (zero for equality rows): the local rows are
    eliminated into the blocks ``M_j``, whose 2 x 2 inverses are closed-form with the determinant
    summed from nonnegative terms (Cauchy-Binet: no cancellation when ``z / s`` spans 1e15), and the
    coupling rows are solved through ``S = C_K M^{-1} C_K' + D_K``.
    """

    def __init__(self, st: Structure, H: np.ndarray, d: np.ndarray) -> None:
        self.st, self.H, self.d = st, H, d
        nb = st.nb
        self.w = w = 1.0 / d[st.lrow]  # local rows: z / s
        h0, h1 = st.split(H)
        h1 = np.where(st.v1 < 0, 1.0, h1)
        self.wa0, self.wa1 = w * st.la0, w * st.la1
        s00 = np.bincount(st.lblk, self.wa0 * st.la0, nb)
        s11 = np.bincount(st.lblk, self.wa1 * st.la1, nb)
        s01 = np.bincount(st.lblk, self.wa0 * st.la1, nb)
        reg = PRIMAL_DELTA * np.maximum.reduce([h0, h1, s00, s11])  # each block's own scale
        h0, h1 = h0 + reg, h1 + reg
        m00, m11 = h0 + s00, h1 + s11
        # det M = h0 h1 + h0 s11 + h1 s00 + sum over pairs of rows of w_i w_j (2x2 minor)^2
        wp = np.append(w, 0.0)[st.slot]
        a0, a1 = st.a0, st.a1
        cross = np.zeros(nb)
        L = int(st.a0.shape[1])
        for i in range(L):
            for j in range(i + 1, L):
                minor = a0[:, i] * a1[:, j] - a0[:, j] * a1[:, i]
                cross += wp[:, i] * wp[:, j] * minor * minor
        det = h0 * h1 + h0 * s11 + h1 * s00 + cross
        if not (np.all(det > 0) and np.all(np.isfinite(det))):
            raise np.linalg.LinAlgError("a block of the Newton system is singular")
        self.i00, self.i11, self.i01 = m11 / det, m00 / det, -s01 / det
        # S = C0' i00 C0 + C0' i01 C1 + C1' i01 C0 + C1' i11 C1 + D_K (C1 has few nonzero columns)
        C0, C1c, c1 = st.C0, st.C1c, st.c1
        B = C0 * np.sqrt(self.i00)[:, None]
        S = B.T @ B
        if c1.size:
            T01 = C0.T @ (self.i01[:, None] * C1c)
            S[:, c1] += T01
            S[c1, :] += T01.T
            S[np.ix_(c1, c1)] += C1c.T @ (self.i11[:, None] * C1c)
        dk = d[st.coupling]
        S[np.diag_indices_from(S)] += dk
        self.chol = _regularized_cholesky(S, dk == 0) if S.size else None

    def _apply(self, r1: np.ndarray, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        st = self.st
        r2l = r2[st.lrow]
        b0, b1 = st.split(r1)
        b0 = b0 + np.bincount(st.lblk, self.wa0 * r2l, st.nb)
        b1 = b1 + np.bincount(st.lblk, self.wa1 * r2l, st.nb)
        y0 = self.i00 * b0 + self.i01 * b1
        y1 = self.i01 * b0 + self.i11 * b1
        dy = np.empty(r2.size)
        if self.chol is not None:
            rk = st.C0.T @ y0 - r2[st.coupling]
            rk[st.c1] += st.C1c.T @ y1
            dyk = la.cho_solve(self.chol, rk, check_finite=False)
            u0 = st.C0 @ dyk
            u1 = st.C1c @ dyk[st.c1]
            y0 = y0 - (self.i00 * u0 + self.i01 * u1)
            y1 = y1 - (self.i01 * u0 + self.i11 * u1)
            dy[st.coupling] = dyk
        dy[st.lrow] = self.w * (st.la0 * y0[st.lblk] + st.la1 * y1[st.lblk] - r2l)
        return st.join(y0, y1), dy

    def _multiply(self, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[H, C'; C, -D] [dx; dy]``."""
        st = self.st
        t0, t1 = st.transpose_times(dy)
        x0, x1 = st.split(dx)
        return self.H * dx + st.join(t0, t1), st.times(x0, x1) - self.d * dy

    def solve(self, r1: np.ndarray, r2: np.ndarray, refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The solution, refined on the unreduced system (``refine``) until accurate or no longer improving."""
        dx, dy = self._apply(r1, r2)
        if not refine:
            return dx, dy
        norm = max(float(np.max(np.abs(r1), initial=0.0)), float(np.max(np.abs(r2), initial=0.0)), 1e-300)
        last = math.inf
        for _ in range(REFINE_STEPS):
            m1, m2 = self._multiply(dx, dy)
            e1, e2 = r1 - m1, r2 - m2
            err = max(float(np.max(np.abs(e1), initial=0.0)), float(np.max(np.abs(e2), initial=0.0)))
            if err <= REFINE_TOLERANCE * norm or err > 0.5 * last:
                break  # accurate, or no longer improving
            last = err
            cx, cy = self._apply(e1, e2)
            dx, dy = dx + cx, dy + cy
        return dx, dy


def _regularized_cholesky(S: np.ndarray, equality: np.ndarray) -> Any:
    """Cholesky factor of the Schur complement ``S`` (positive definite in exact arithmetic; rows held
    at equality from both sides make it ill-conditioned near the optimum). Equality rows get
    :data:`SCHUR_DELTA` of their own diagonal entry added (not of the largest: an inactive row's ``s / z``
    reaches 1e12 near the optimum); if the factorization still fails, every row gets a regularization
    100x larger each time, up to 1e-6 of its diagonal. Iterative refinement on the unreduced system
    removes the bias either way."""
    own = np.abs(np.diag(S)).copy()
    own[own == 0] = 1.0
    S = S.copy()
    S[np.diag_indices_from(S)] += np.where(equality, SCHUR_DELTA * own, 0.0)
    delta = SCHUR_DELTA
    while True:
        try:
            return la.cho_factor(S, lower=True, check_finite=False)
        except la.LinAlgError:
            if delta > 1e-6:
                raise np.linalg.LinAlgError("the coupling rows' Schur complement is not positive definite") from None
            S[np.diag_indices_from(S)] += delta * own
            delta *= 100


def _max_step(v: np.ndarray, dv: np.ndarray) -> float:
    """The largest ``a`` in [0, 1] with ``v + a dv >= 0``."""
    neg = dv < 0
    if not neg.any():
        return 1.0
    return float(min(1.0, np.min(-v[neg] / dv[neg])))


def solve(st: Structure, tol_feas: float = 1e-9, tol_gap_abs: float = 1e-9, tol_gap_rel: float = 1e-9,
          max_iter: int = 100) -> Result:
    """Solve the program of ``st`` (see the module docstring).

    Returns a :class:`Result` whatever happens; only ``status == "optimal"`` is an answer. BLAS runs
    on one thread meanwhile: its products here are (blocks x K) by (blocks x K), for which waking a
    second thread costs more than the product (measured 15x slower at 1,000 blocks on 2 cores).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        return _solve(st, tol_feas, tol_gap_abs, tol_gap_rel, max_iter)


def _solve(st: Structure, tol_feas: float, tol_gap_abs: float, tol_gap_rel: float, max_iter: int) -> Result:
    start = time.perf_counter()
    P, q, f, h, Q = st.P, st.q, st.f, st.h, st.Q
    N, mG, mE = q.size, st.G.shape[0], st.E.shape[0]
    cap = Q is not None
    mc = mG + cap  # conic (nonnegative) rows: the inequality rows and the cap
    # the starting point (CVXOPT's): x minimizing 1/2 x'Px + 1/2 |Gx - h|^2 with Ex = f, and the
    # multipliers of the same system with the objective's gradient; both shifted inside the cone
    if cap:
        st.set_cap_gradient(np.zeros(N))
    d0 = np.concatenate([np.ones(mc), np.zeros(mE)])
    try:
        init = _Newton(st, P, d0)
        x, _ = init.solve(np.zeros(N), np.concatenate([h, np.zeros(int(cap)), f]))
        _, yd = init.solve(-q, np.zeros(st.m))
    except np.linalg.LinAlgError as exc:
        return _failed("singular", N, mG, mE, start, 0, str(exc))
    x0, x1 = st.split(x)
    s = np.concatenate([h - st.times(x0, x1)[:mG], [0.5 - 0.5 * float(x @ (Q * x))] if Q is not None else []])
    z = np.concatenate([yd[:mG], [0.0] if cap else []])
    nu = yd[mc:]
    s, z = _shift(s, z)
    scale_p = max(float(np.max(np.abs(h), initial=0.0)), float(np.max(np.abs(f), initial=0.0)))
    scale_d = float(np.max(np.abs(q), initial=0.0))
    stalls = 0
    residuals: dict[str, float] = {}
    for it in range(max_iter + 1):
        zq = float(z[mG]) if cap else 0.0
        Qx = Q * x if Q is not None else None
        if Qx is not None:
            st.set_cap_gradient(Qx)
        x0, x1 = st.split(x)
        y = np.concatenate([z, nu])
        t0, t1 = st.transpose_times(y)
        rd = P * x + q + st.join(t0, t1)
        rows = st.times(x0, x1)
        rp = rows[:mc] + s - np.concatenate([h, [0.0] if cap else []])
        if Qx is not None:
            rp[mG] = 0.5 * float(x @ Qx) + s[mG] - 0.5
        re = rows[mc:] - f
        pobj = 0.5 * float(x @ (P * x)) + float(q @ x)
        H = P + zq * Q if Q is not None else P
        dobj = -0.5 * float(x @ (H * x)) - float(h @ z[:mG]) - float(f @ nu) - 0.5 * zq
        gap = abs(pobj - dobj)
        xnorm = float(np.max(np.abs(x), initial=0.0))
        # Clarabel's normalization: residuals relative to the data plus the iterate's size
        res_p = max(float(np.max(np.abs(rp), initial=0.0)), float(np.max(np.abs(re), initial=0.0))) / max(
            1.0, scale_p + xnorm + float(np.max(s)))
        res_d = float(np.max(np.abs(rd), initial=0.0)) / max(1.0, scale_d + xnorm + float(np.max(np.abs(y))))
        residuals = {"primal": res_p, "dual": res_d, "gap": gap, "complementarity": float(s @ z)}
        if res_p <= tol_feas and res_d <= tol_feas and (gap <= tol_gap_abs or
                                                        gap <= tol_gap_rel * max(1.0, min(abs(pobj), abs(dobj)))):
            return Result("optimal", x, z[:mG].copy(), nu.copy(), zq, it, time.perf_counter() - start, pobj, residuals)
        if it == max_iter:
            break
        if not (np.isfinite(pobj) and np.isfinite(dobj)) or max(xnorm, float(np.max(np.abs(z)))) > DIVERGED * max(
                1.0, scale_p, scale_d):
            return Result("diverged", x, z[:mG], nu, zq, it, time.perf_counter() - start, pobj, residuals,
                          "the iterates grow without bound: the program may be infeasible or unbounded")
        mu = float(s @ z) / mc
        try:
            kkt = _Newton(st, H, np.concatenate([s / z, np.zeros(mE)]))
        except np.linalg.LinAlgError as exc:
            return _failed("singular", N, mG, mE, start, it, str(exc))

        residual = (rd, rp, re)
        # predictor (affine scaling), unrefined: it only sets the centring and the corrector's
        # second-order term; the corrector's step is the one taken, refined
        dx, ds, dz, dnu = _direction(kkt, residual, s, z, s * z, refine=False)
        alpha = min(_max_step(s, ds), _max_step(z, dz))
        mu_aff = float((s + alpha * ds) @ (z + alpha * dz)) / mc
        sigma = (mu_aff / mu) ** 3
        dx, ds, dz, dnu = _direction(kkt, residual, s, z, s * z + ds * dz - sigma * mu)  # corrector
        alpha = min(1.0, STEP_FRACTION * min(_max_step(s, ds), _max_step(z, dz)))
        if not math.isfinite(alpha) or alpha < MIN_STEP:
            stalls += 1
            if stalls >= STALL_LIMIT:
                return Result("stalled", x, z[:mG], nu, zq, it, time.perf_counter() - start, pobj, residuals,
                              f"{STALL_LIMIT} steps in a row shorter than {MIN_STEP:g}")
        else:
            stalls = 0
        x, s, z, nu = x + alpha * dx, s + alpha * ds, z + alpha * dz, nu + alpha * dnu
    return Result("max_iterations", x, z[:mG], nu, float(z[mG]) if cap else 0.0, max_iter,
                  time.perf_counter() - start, 0.5 * float(x @ (P * x)) + float(q @ x), residuals,
                  f"no convergence in {max_iter} iterations")


def _direction(kkt: _Newton, residual: tuple[np.ndarray, np.ndarray, np.ndarray], s: np.ndarray, z: np.ndarray,
               rc: np.ndarray, refine: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Newton direction ``(dx, ds, dz, dnu)`` for the complementarity target ``s dz + z ds = -rc``:
    ``ds = -(rc + s dz) / z``, so the conic rows read ``C dx - (s / z) dz = -rp + rc / z``."""
    rd, rp, re = residual
    dx, dy = kkt.solve(-rd, np.concatenate([-rp + rc / z, -re]), refine)
    dz = dy[:s.size]
    return dx, -(rc + s * dz) / z, dz, dy[s.size:]


def _shift(s: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mehrotra's shift of a starting pair into the cone's interior."""
    s = s + max(-1.5 * float(np.min(s, initial=0.0)), 0.0)
    z = z + max(-1.5 * float(np.min(z, initial=0.0)), 0.0)
    sz = float(s @ z)
    if sz <= 0 or not math.isfinite(sz):
        return np.ones_like(s), np.ones_like(z)
    s = s + 0.5 * sz / float(np.sum(z))
    z = z + 0.5 * sz / float(np.sum(s))
    return s, z


def _failed(status: str, N: int, mG: int, mE: int, start: float, it: int, detail: str) -> Result:
    return Result(status, np.zeros(N), np.zeros(mG), np.zeros(mE), 0.0, it, time.perf_counter() - start, math.nan,
                  detail=detail)
