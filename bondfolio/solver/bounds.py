"""Bound folding: every simple per-position bound of a program as one upper and one lower bound vector."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Compiled, Constraint, ParamSet, Rows
from bondfolio.constraints.variables import Vars
from bondfolio.errors import InputError
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["BoundFold"]


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
