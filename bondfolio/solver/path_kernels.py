"""Compiled kernels of the solution path's block backend (:class:`bondfolio.solver.path._BlockKkt`).

A breakpoint of the block backend is a few dozen small numpy operations over the blocks' outputs
(``2 x P nb`` values, ``nb`` ~ 1,000 blocks of ``P`` ~ 6 outputs) and a rank-``B`` update of the
coupling matrices; at that size numpy's per-call cost dominates. These kernels do the same arithmetic
in one compiled loop each (numba, compiled once per machine and cached next to this file):

* :func:`piece` solves for the active coupling multipliers ``z_D`` and fills the blocks' outputs and
  the coupling positions' values of the current piece (``_BlockKkt._piece``'s formulas);
* :func:`ratio_test` finds the next breakpoint among them (``_BlockKkt.event``'s test, operation
  for operation, so it picks the same row); :func:`event` is the two in one call;
* :func:`change_local` switches one local row on or off: its block's matrix inverted again, its
  ``M`` and ``F0`` columns replaced, and the Schur complement and its right-hand side updated.

This module imports numba at import time; :mod:`bondfolio.solver.path` imports it only when the block
backend runs and uses its numpy code when numba is not installed. Array layouts are those of
``_BlockKkt`` (its class docstring): ``M`` (B, P, nb), ``F0`` (2, P, nb), outputs slot-major.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["change_local", "coupling_multipliers", "event", "piece", "ratio_test"]


@numba.njit(cache=True)
def coupling_multipliers(Sfull: np.ndarray, g: np.ndarray, mD: int) -> np.ndarray:
    """``z_D`` (mD x 2), the active coupling rows' multipliers of the piece: ``(S + delta I)_DD z_D = g_D``
    by Cholesky, or by LU where that fails (as ``_BlockKkt._zD``)."""
    A = np.ascontiguousarray(Sfull[:mD, :mD])
    z = g[:mD].copy()  # (solved in place)
    if not mD:
        return z
    try:
        L = np.linalg.cholesky(A)
    except Exception:  # not positive definite to rounding
        return np.linalg.solve(A, z)
    for k in range(2):
        for i in range(mD):  # L y = g
            acc = z[i, k]
            for m in range(i):
                acc -= L[i, m] * z[m, k]
            z[i, k] = acc / L[i, i]
        for i in range(mD - 1, -1, -1):  # L' z = y
            acc = z[i, k]
            for m in range(i + 1, mD):
                acc -= L[m, i] * z[m, k]
            z[i, k] = acc / L[i, i]
    return z


@numba.njit(cache=True)
def piece(M: np.ndarray, F0: np.ndarray, CTbT: np.ndarray, used_all: np.ndarray, used_ptr: np.ndarray,
          used_idx: np.ndarray, Sfull: np.ndarray, g: np.ndarray, mD: int, s: float, F: np.ndarray) -> np.ndarray:
    """Fill ``F`` (2 x (P nb + mc)) with the piece's outputs and return ``z_D``
    (:func:`coupling_multipliers`): ``F0 - sum_b M[b] e[:, b]`` per block, ``e = C_D' z_D`` the active
    rows' pull on the variables (slot ``b`` takes every active position when ``used_all[b]``, else the
    positions ``used_idx[used_ptr[b]:used_ptr[b + 1]]``), then ``z_D`` and the inactive coupling rows'
    ``(z_D' S_DI - g_I') / s``."""
    zD = coupling_multipliers(Sfull, g, mD)
    B, P, nb = M.shape
    mc = Sfull.shape[0]
    nP = P * nb
    # (the loops run over contiguous slices, one operation each, so that they vectorize)
    e0, e1 = np.zeros(B * nb), np.zeros(B * nb)
    if mD:
        for b in range(B):
            off = b * nb
            a0, a1 = e0[off:off + nb], e1[off:off + nb]
            count = mD if used_all[b] else used_ptr[b + 1] - used_ptr[b]
            for q in range(count):
                m = q if used_all[b] else used_idx[used_ptr[b] + q]
                z0, z1 = zD[m, 0], zD[m, 1]
                row = CTbT[m, off:off + nb]
                for j in range(nb):
                    a0[j] += z0 * row[j]
                    a1[j] += z1 * row[j]
    acc0, acc1 = np.empty(nb), np.empty(nb)
    for p in range(P):
        Mp = M[0, p]
        for j in range(nb):
            acc0[j] = Mp[j] * e0[j]
            acc1[j] = Mp[j] * e1[j]
        for b in range(1, B):
            Mp, off = M[b, p], b * nb
            for j in range(nb):
                acc0[j] += Mp[j] * e0[off + j]
                acc1[j] += Mp[j] * e1[off + j]
        f0, f1 = F0[0, p], F0[1, p]
        out0, out1 = F[0, p * nb:(p + 1) * nb], F[1, p * nb:(p + 1) * nb]
        for j in range(nb):
            out0[j] = f0[j] - acc0[j]
            out1[j] = f1[j] - acc1[j]
    inv_s = 1.0 / s
    for k in range(2):
        for m in range(mD):
            F[k, nP + m] = zD[m, k]
        for i in range(mD, mc):
            acc = 0.0
            for m in range(mD):
                acc += zD[m, k] * Sfull[i, m]
            F[k, nP + i] = (acc - g[i, k]) * inv_s
    return zD


@numba.njit(cache=True)
def event(M: np.ndarray, F0: np.ndarray, CTbT: np.ndarray, used_all: np.ndarray, used_ptr: np.ndarray,
          used_idx: np.ndarray, Sfull: np.ndarray, g: np.ndarray, mD: int, s: float, F: np.ndarray, nx: int,
          wl: np.ndarray, big: np.ndarray, t: float, direction: float) -> tuple[float, int]:
    """:func:`piece`, then :func:`ratio_test` on it: one breakpoint's search in one call."""
    piece(M, F0, CTbT, used_all, used_ptr, used_idx, Sfull, g, mD, s, F)
    return ratio_test(F, nx, wl, big, t, direction)


@numba.njit(cache=True)
def ratio_test(F: np.ndarray, nx: int, wl: np.ndarray, big: np.ndarray, t: float,
               direction: float) -> tuple[float, int]:
    """The next breakpoint's distance and the position of its row among the tested values
    ``F[:, nx:]`` (``inf`` and 0 when no row is headed for its bound): ``_BlockKkt.event``'s test."""
    n = F.shape[1]
    xmax, xmin = -math.inf, math.inf
    for i in range(nx):
        v = F[1, i]
        if v > xmax:
            xmax = v
        if v < xmin:
            xmin = v
    tol_x = 1e-12 * max(xmax, -xmin)
    lmax = 0.0
    for i in range(nx, n):
        v = abs(F[1, i]) * wl[i - nx]
        if v > lmax:
            lmax = v
    tol_l = 1e-12 * lmax
    up = direction > 0
    tsign = -t if up else t
    best, k = math.inf, 0
    for i in range(nx, n):
        r = i - nx
        fv, f0 = F[1, i], F[0, i]
        thr = wl[r] * (tol_l - tol_x)
        thr = thr + fv if up else thr - fv
        thr += big[r]
        if not thr < -tol_x:
            continue
        num = fv * tsign
        num = num - f0 if up else num + f0
        a = num / fv
        if a < best:
            best, k = a, r
        elif a != a:  # as numpy's argmin: the first NaN wins
            return a, r
    return best, k


@numba.njit(cache=True)
def change_local(K: np.ndarray, Kf: np.ndarray, E: np.ndarray, Cb: np.ndarray, bias: np.ndarray,
                 bloc: np.ndarray, rf: np.ndarray, rfon: np.ndarray, Kinv: np.ndarray, M: np.ndarray,
                 F0: np.ndarray, Sfull: np.ndarray, g: np.ndarray, CTbT: np.ndarray, eye: np.ndarray,
                 j: int, slot: int, on: bool, s: float, delta: float) -> bool:
    """Block ``j`` with its local row ``slot`` switched on (``on``) or off: its matrix and output rows
    changed and inverted again, its ``M`` and ``F0`` columns replaced, ``S + delta I`` and ``g``
    updated by the change of ``C_j Q_j C_j'`` and ``C_j x_j`` (``_BlockKkt._refresh`` and
    ``_change``). False, with ``Kinv``, ``M``, ``F0``, ``S`` and ``g`` untouched, if the block is singular."""
    B, P, nb = M.shape
    mc = Sfull.shape[0]
    i = B + slot
    Kj, Ej = K[j], E[j]
    if on:
        for c in range(B):
            Kj[i, c] = Kf[j, i, c]
            Kj[c, i] = Kf[j, c, i]
            Ej[i, c] = 0.0
        Kj[i, i] = -delta
        Ej[i, i] = 1.0
        bias[j, slot] = 0.0
    else:
        for c in range(B):
            Kj[i, c] = 0.0
            Kj[c, i] = 0.0
            Ej[i, c] = -Cb[j, slot, c]
        Kj[i, i] = -1.0
        Ej[i, i] = 0.0
        bias[j, slot] = bloc[j, slot]
    try:
        Ki = np.linalg.solve(Kj, eye)
    except Exception:  # singular (LAPACK's info != 0) or not finite
        return False
    if not math.isfinite(Ki.sum()):
        return False
    Kinv[j] = Ki
    EK = Ej @ Ki
    rfon[j, i, 0] = rf[j, i, 0] if on else 0.0
    rfon[j, i, 1] = rf[j, i, 1] if on else 0.0
    f = EK @ rfon[j]  # (P, 2)
    for r in range(B, P):
        f[r, 0] += bias[j, r - B]
    # the change of the block's x-part: D (B out x B in) of M and d (B x 2) of F0
    D = np.empty((B, B))
    d = np.empty((B, 2))
    for o in range(B):
        for c in range(B):
            D[o, c] = s * EK[o, c] - M[c, o, j]
        d[o, 0] = f[o, 0] - F0[0, o, j]
        d[o, 1] = f[o, 1] - F0[1, o, j]
    # S += (s ct) D ct', g += (s ct) d, ct = block j's variables' coupling coefficients (mc x B)
    W = np.zeros((B, mc))  # D ct'
    for o in range(B):
        for c in range(B):
            Doc = D[o, c]
            if Doc != 0.0:
                for m in range(mc):
                    W[o, m] += Doc * CTbT[m, c * nb + j]
    for a in range(mc):
        acc0, acc1 = 0.0, 0.0
        for o in range(B):
            cs = s * CTbT[a, o * nb + j]
            if cs != 0.0:
                for m in range(mc):
                    Sfull[a, m] += cs * W[o, m]
                acc0 += cs * d[o, 0]
                acc1 += cs * d[o, 1]
        g[a, 0] += acc0
        g[a, 1] += acc1
    for p in range(P):
        for c in range(B):
            M[c, p, j] = s * EK[p, c]
        F0[0, p, j] = f[p, 0]
        F0[1, p, j] = f[p, 1]
    return True
