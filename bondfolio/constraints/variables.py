"""The decision variables of one program and the shared expressions built on them.

Constraint families and objective terms both read these: ``w`` and ``cash``, the trade sizes
``|w - w0|``, the hedges' gross notional and margin, and the risk model's expressions (factor
exposures, specific part, variance, volatility). Each shared piece is created on first use, with its
defining constraints collected in :attr:`Vars.definitions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.errors import InputError
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["Point", "Vars"]


@dataclass(frozen=True)
class Point:
    """A finished allocation: weights by opportunity, idle cash and hedge margin posted, fractions of NAV."""

    w: np.ndarray
    cash: float
    margin: float = 0.0


class Vars:
    """The decision variables and shared auxiliary expressions of one program.

    ``w`` (n weights) and ``cash`` always exist. Shared pieces are created on first use, with their
    defining constraints collected in :attr:`definitions`:

    - :attr:`trade_size`: a variable ``a >= |w - w0|`` (elementwise), used by trading costs and
      turnover alike. Both only ever push ``a`` down, so at the optimum ``a = |w - w0|`` wherever it
      matters, and any feasible ``a`` makes ``sum |w - w0| <= sum a``: a turnover limit on ``a`` is
      never looser than the true one.
    - :attr:`risk`: factor variables ``y = R' w`` (k of them); the specific part enters as
      ``|s * w|^2`` directly, with no copy of ``w``.

    :attr:`within_available` marks positions some constraint keeps within the market's available
    liquidity whatever the data (set by the solver from :meth:`Constraint.implies_within_available`
    before compiling); families may drop terms that this makes redundant.

    ``outside=True`` (the solver's own program) lets a family keep a large block of rows out of the
    compiled program: it compiles to an epigraph variable, listed in :attr:`outside`, whose rows the
    solver generates itself (``cvar`` over many scenarios: :mod:`bondfolio.solver.cvar_cuts`). Other
    programs built on these variables (the infeasibility diagnosis) keep every row inside.
    """

    def __init__(self, universe: Universe, outside: bool = False) -> None:
        n = universe.n
        self.n = n
        self.w = cp.Variable(n, name="w")
        self.cash = cp.Variable(name="cash")
        self.definitions: list[cp.Constraint] = []
        self.named: dict[str, cp.Constraint] = {}
        """Definitions whose duals an explanation reads, by ``"<family label>:<part>"``."""
        self.allow_outside = outside
        self.outside: dict[str, cp.Variable] = {}
        """Epigraph variables of families whose rows are kept out of the compiled program, by family label."""
        self.within_available: np.ndarray = np.zeros(n, dtype=bool)
        self._universe = universe
        self._w0: cp.Parameter | None = None
        self._trade_size: cp.Variable | None = None
        self._factor: cp.Variable | None = None
        self._risk_params: tuple[cp.Parameter, cp.Parameter] | None = None
        self._specific_variance: cp.Parameter | None = None
        self._dense_cov: np.ndarray | None = None
        self._hedge_size: cp.Variable | None = None
        self._margin: cp.Variable | None = None
        self.hedge_idx = np.flatnonzero(universe.hedge)
        self.trade_rows: tuple[cp.Constraint, cp.Constraint] | None = None
        """The definitions of :attr:`trade_size` (``a >= w - w0``, ``a >= w0 - w``), once made."""
        self.factor_row: cp.Constraint | None = None
        """The definition of the factor exposures ``y = R' w``, once made."""

    @property
    def w0(self) -> cp.Parameter:
        """Current weights, a Parameter."""
        if self._w0 is None:
            self._w0 = cp.Parameter(self.n, name="w0", value=np.asarray(self._universe.w0))
        return self._w0

    @property
    def trade_size(self) -> cp.Variable:
        """``a`` with ``a >= |w - w0|`` elementwise (see the class docstring)."""
        if self._trade_size is None:
            self._trade_size = cp.Variable(self.n, name="trade_size")
            self.trade_rows = (self._trade_size >= self.w - self.w0, self._trade_size >= self.w0 - self.w)
            self.definitions += list(self.trade_rows)
        return self._trade_size

    @property
    def hedge_size(self) -> cp.Variable:
        """Gross notional ``a = |w_h|`` of the hedges ``h`` (in :attr:`hedge_idx` order): exactly ``w_h``
        or ``-w_h`` for hedges with a ``side`` (which also fixes the sign of ``w_h``), and ``a >= |w_h|``
        for the others. Carry, hedge budgets and tier caps only push ``a`` down or bound it above, so
        any feasible ``a`` over-states ``|w_h|``, never under-states it; margin equals ``m' a``, and
        the independent check compares it with ``m' |w|``."""
        if self._hedge_size is None:
            a = cp.Variable(self.hedge_idx.size, name="hedge_size", nonneg=True)
            self._hedge_size = a
            wh = self.w[self.hedge_idx]
            sides = np.array([self._universe.snapshot.opportunities[i].side for i in self.hedge_idx])
            for side, sign in (("long", 1.0), ("short", -1.0)):
                k = np.flatnonzero(sides == side)
                if k.size:  # a hedge with a side: |w| is linear and exact
                    self.definitions.append(a[k] == sign * wh[k])
            k = np.flatnonzero(sides == "either")
            if k.size:
                self.definitions += [a[k] >= wh[k], a[k] >= -wh[k]]
        return self._hedge_size

    @property
    def margin(self) -> cp.Variable:
        """Collateral posted for hedges, fraction of NAV (taken from the budget)."""
        if self._margin is None:
            self._margin = cp.Variable(name="margin", nonneg=True)
        return self._margin

    @property
    def has_trade_size(self) -> bool:
        return self._trade_size is not None

    @property
    def factor(self) -> cp.Variable | None:
        """The factor exposures ``y = R' w``, if the program made them (see :meth:`risk_parts`)."""
        return self._factor

    @property
    def risk_numbers(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The values of the risk Parameters ``(R, s)`` as compiled (``None`` before :meth:`risk_parts`)."""
        if self._risk_params is None:
            return None
        return np.asarray(self._risk_params[0].value), np.asarray(self._risk_params[1].value)

    @property
    def has_margin(self) -> bool:
        return self._margin is not None

    def risk_parts(self) -> tuple[cp.Variable | None, cp.Expression | None]:
        """The factor variable ``y = R' w`` (``None`` without factors) and the specific part ``s * w``
        (``None`` when every specific variance is 0)."""
        if self._risk_params is None:
            r, s = self._universe.risk_factor
            rp = cp.Parameter(r.shape, name="risk_loadings", value=r)
            sp = cp.Parameter(self.n, name="risk_specific", nonneg=True, value=s)
            self._risk_params = (rp, sp)
            if r.shape[1]:
                self._factor = cp.Variable(r.shape[1], name="risk_factor")
                self.factor_row = self._factor == rp.T @ self.w
                self.definitions.append(self.factor_row)
        rp, sp = self._risk_params
        specific = cp.multiply(sp, self.w) if np.any(np.asarray(sp.value) > 0) else None
        return self._factor, specific

    @property
    def risk(self) -> list[cp.Expression]:
        """Expressions whose squared norms add up to ``w' Sigma w`` (factor part, specific part)."""
        return [e for e in self.risk_parts() if e is not None]

    def variance(self) -> cp.Expression:
        """``w' Sigma w``.

        Factor form: squared norms of ``R' w`` (k variables) and ``s * w``; never an n x n matrix.
        Dense form: ``quad_form`` with the covariance as a constant PSD matrix, which QP solvers take
        as is (measured several times faster than a dense square-root factor; see benchmarks/).
        A dense covariance is therefore fixed once compiled: :meth:`update` refuses a different one.
        """
        cov = self._universe.snapshot.risk.covariance
        if cov is not None:
            self._dense_cov = cov
            return cp.quad_form(self.w, cp.psd_wrap(cov))
        factor, specific = self.risk_parts()
        total: cp.Expression = cp.Constant(0.0)
        if factor is not None:
            total = total + cp.sum_squares(factor)
        if specific is not None:
            # d' (w * w) rather than |s * w|^2: goes straight into the QP's quadratic term, no copy of w
            if self._specific_variance is None:
                _, s = self._universe.risk_factor
                self._specific_variance = cp.Parameter(self.n, name="specific_variance", nonneg=True, value=s**2)
            total = total + self._specific_variance @ cp.square(self.w)
        return total

    def volatility(self) -> cp.Expression:
        """``sqrt(w' Sigma w)`` as a Euclidean norm of the risk expressions (a second-order cone)."""
        parts = self.risk
        if not parts:
            return cp.Constant(0.0)
        return cp.norm(cp.hstack(parts), 2)

    def update(self, universe: Universe) -> None:
        """Point the parameters at a new universe of the same shape."""
        self._universe = universe
        cov = universe.snapshot.risk.covariance
        if self._dense_cov is not None and (cov is None or not np.array_equal(self._dense_cov, cov)):
            raise InputError("the dense covariance changed: it is compiled as a constant, so build a new Program "
                             "(or give the risk model in factor form, whose numbers are Parameters)")
        if self._w0 is not None:
            self._w0.value = np.asarray(universe.w0)
        if self._risk_params is not None:
            r, s = universe.risk_factor
            self._risk_params[0].value = r
            self._risk_params[1].value = s
        if self._specific_variance is not None:
            self._specific_variance.value = universe.risk_factor[1] ** 2
