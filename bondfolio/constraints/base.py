"""What every constraint family shares: rows with bounds, compilation to cvxpy, the numpy check.

A constraint family describes one or more scalar *rows* ``lower_r <= f_r(w, c) <= upper_r`` where
``w`` are weights (fractions of NAV), ``c`` idle cash (fraction of NAV) and ``f`` is a vector
function the family gives twice: once as a cvxpy expression (:meth:`Constraint.expression`), once as
plain numpy (:meth:`Constraint.evaluate`). The base class turns that into cvxpy constraints whose
bounds are Parameters (so repeated solves reuse the compiled problem), checks a finished allocation
against the same bounds without any solver, and reads back dual values.

Writing a new family means: a frozen model with a literal ``kind``, ``resolve`` (labels, bounds,
data), ``expression`` and ``evaluate``. Nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cvxpy as cp
import numpy as np

from bondfolio.errors import InputError
from bondfolio.inputs.policy import ConstraintSpec
from bondfolio.inputs.universe import Universe

__all__ = ["Compiled", "Constraint", "ParamSet", "Point", "RowResult", "Rows", "Vars"]


@dataclass(frozen=True)
class Point:
    """A finished allocation: weights by opportunity, idle cash and hedge margin posted, fractions of NAV."""

    w: np.ndarray
    cash: float
    margin: float = 0.0


@dataclass
class Rows:
    """A constraint family resolved against a universe.

    ``labels`` name each row (e.g. the group or the opportunity id). ``lower`` and ``upper`` are the
    bounds (``-inf``/``inf`` where absent) in the row's units. ``coefficients`` are the numbers the
    expression multiplies weights by (they become cvxpy Parameters and can change between solves);
    ``structure`` is everything else the expression needs (indices, membership matrices), fixed once
    compiled.
    """

    labels: list[str]
    lower: Any
    """Lower bounds: a number or an array; a float array of one entry per row once built."""
    upper: Any
    """Upper bounds, likewise."""
    coefficients: dict[str, np.ndarray] = field(default_factory=dict)
    structure: dict[str, Any] = field(default_factory=dict)
    unit: str = "fraction of NAV"
    nonneg: tuple[str, ...] = ()
    """Names of ``coefficients`` that are never negative (their Parameters are declared so, which
    lets them multiply convex terms)."""

    def __post_init__(self) -> None:
        m = len(self.labels)
        self.lower = np.broadcast_to(np.asarray(self.lower, dtype=float), (m,)).copy()
        self.upper = np.broadcast_to(np.asarray(self.upper, dtype=float), (m,)).copy()


class ParamSet:
    """Named cvxpy Parameters created from arrays, updatable in place for re-solves."""

    def __init__(self, arrays: Mapping[str, np.ndarray], nonneg: Sequence[str] = ()) -> None:
        self._params: dict[str, cp.Parameter] = {}
        for name, value in arrays.items():
            value = np.asarray(value, dtype=float)
            self._params[name] = cp.Parameter(value.shape, name=name, value=value, nonneg=name in nonneg)

    def __getitem__(self, name: str) -> cp.Parameter:
        return self._params[name]

    def update(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Assign new values; shapes must match the compiled ones."""
        for name, value in arrays.items():
            self._params[name].value = np.asarray(value, dtype=float)


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
    """

    def __init__(self, universe: Universe) -> None:
        n = universe.n
        self.n = n
        self.w = cp.Variable(n, name="w")
        self.cash = cp.Variable(name="cash")
        self.definitions: list[cp.Constraint] = []
        self.named: dict[str, cp.Constraint] = {}
        """Definitions whose duals an explanation reads, by ``"<family label>:<part>"``."""
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
        self._gamma: cp.Parameter | None = None
        self._scaled_specific: cp.Parameter | None = None
        self.hedge_idx = np.flatnonzero(universe.hedge)

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
            self.definitions += [self._trade_size >= self.w - self.w0, self._trade_size >= self.w0 - self.w]
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
    def has_margin(self) -> bool:
        return self._margin is not None

    def _risk_parts(self) -> tuple[cp.Variable | None, cp.Expression | None]:
        if self._risk_params is None:
            r, s = self._universe.risk_factor
            rp = cp.Parameter(r.shape, name="risk_loadings", value=r)
            sp = cp.Parameter(self.n, name="risk_specific", nonneg=True, value=s)
            self._risk_params = (rp, sp)
            if r.shape[1]:
                self._factor = cp.Variable(r.shape[1], name="risk_factor")
                self.definitions.append(self._factor == rp.T @ self.w)
        rp, sp = self._risk_params
        specific = cp.multiply(sp, self.w) if np.any(np.asarray(sp.value) > 0) else None
        return self._factor, specific

    @property
    def risk(self) -> list[cp.Expression]:
        """Expressions whose squared norms add up to ``w' Sigma w`` (factor part, specific part)."""
        return [e for e in self._risk_parts() if e is not None]

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
        factor, specific = self._risk_parts()
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

    def risk_penalty(self, gamma: cp.Parameter) -> cp.Expression:
        """``(gamma / 2) w' Sigma w`` in a DPP-compliant form, so a sweep over ``gamma`` re-solves
        without recompiling: the factor (or dense) part is ``gamma/2`` times a parameter-free
        expression, and the specific part is ``((gamma/2) d)' (w * w)`` with the product kept in one
        Parameter (refreshed by :meth:`update` and :meth:`set_risk_aversion`)."""
        self._gamma = gamma
        cov = self._universe.snapshot.risk.covariance
        if cov is not None:
            return (gamma / 2) * self.variance()
        factor, specific = self._risk_parts()
        total: cp.Expression = cp.Constant(0.0)
        if factor is not None:
            total = total + (gamma / 2) * cp.sum_squares(factor)
        if specific is not None:
            self._scaled_specific = cp.Parameter(self.n, name="scaled_specific_variance", nonneg=True,
                                                 value=self._scaled_specific_value())
            total = total + self._scaled_specific @ cp.square(self.w)
        return total

    def _scaled_specific_value(self) -> np.ndarray:
        assert self._gamma is not None
        return float(np.asarray(self._gamma.value)) / 2 * self._universe.risk_factor[1] ** 2

    def set_risk_aversion(self) -> None:
        """Refresh the Parameters that carry the risk aversion (after ``gamma`` changed)."""
        if self._scaled_specific is not None:
            self._scaled_specific.value = self._scaled_specific_value()

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
        self.set_risk_aversion()


@dataclass
class Compiled:
    """One constraint family compiled into a program."""

    constraint: Constraint
    rows: Rows
    params: ParamSet
    lower_idx: np.ndarray
    upper_idx: np.ndarray
    equality: bool
    cvx: list[cp.Constraint]
    bounds: ParamSet
    dual_source: Callable[[float], np.ndarray] | None = None
    """For families folded into shared bounds: gives their duals instead of ``cvx``."""
    expr: cp.Expression | None = None
    """The row vector ``f(w, c)`` as compiled (the objective reads it for penalties)."""

    def set_bounds(self, lower: np.ndarray, upper: np.ndarray) -> None:
        """Assign new row bounds (same rows bounded on the same sides) to the compiled Parameters."""
        lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        if not (np.array_equal(np.isfinite(lower), np.isfinite(self.rows.lower))
                and np.array_equal(np.isfinite(upper), np.isfinite(self.rows.upper))):
            raise InputError(f"constraint '{self.constraint.label}': which rows are bounded changed: compile anew")
        self.rows.lower, self.rows.upper = lower.copy(), upper.copy()
        if self.dual_source is None:
            self.bounds.update(_bound_arrays(self.rows, self.lower_idx, self.upper_idx, self.equality))

    def duals(self, scale: float = 1.0) -> np.ndarray:
        """Per row, d(objective)/d(bound) of the active side (objective in its own units / ``scale``).

        Upper and equality rows: +dual; lower rows: -dual. A two-sided row reports the side with the
        larger multiplier. NaN when the solver returned none.
        """
        if self.dual_source is not None:
            return self.dual_source(scale)
        m = len(self.rows.labels)
        out = np.zeros(m)
        if self.equality:
            value = self.cvx[0].dual_value
            return np.full(m, np.nan) if value is None else np.reshape(np.asarray(value, dtype=float), m) / scale
        k = 0
        if self.lower_idx.size:
            lo = self.cvx[k].dual_value
            k += 1
            if lo is None:
                return np.full(m, np.nan)
            out[self.lower_idx] -= np.reshape(np.asarray(lo, dtype=float), -1)
        if self.upper_idx.size:
            up = self.cvx[k].dual_value
            if up is None:
                return np.full(m, np.nan)
            out[self.upper_idx] += np.reshape(np.asarray(up, dtype=float), -1)
        return out / scale


@dataclass(frozen=True)
class RowResult:
    """The independent check of one row on a finished allocation."""

    constraint: str
    kind: str
    row: str
    value: float
    lower: float
    upper: float
    slack: float
    """Distance to the nearest bound; negative when violated."""
    violation: float
    """How far outside the bounds (0 when satisfied)."""
    unit: str


class Constraint(ConstraintSpec):
    """A constraint family: its parameters plus the methods that compile and check it.

    Subclasses document their math and units in the docstring (``.. math::``).
    """

    requires_holdings: ClassVar[bool] = False
    """Whether the family compares against current holdings (an error without them)."""
    bound_side: ClassVar[str | None] = None
    """``"upper"`` or ``"lower"`` for families whose rows are simple bounds ``w_i <= b`` / ``w_i >= b``
    with the indices in ``rows.structure["idx"]``: the solver folds all of them into one bound vector
    per side (fewer rows for the solver) and attributes each dual to the family with the tightest
    bound. The numpy check still checks each family on its own."""

    # ------------------------------------------------------------------ to implement
    def resolve(self, u: Universe) -> Rows:
        """Labels, bounds, coefficients and structure of the rows on universe ``u``.

        Raises :class:`~bondfolio.errors.InputError` naming the constraint and the offending id,
        protocol or tag when the policy refers to something the snapshot lacks.
        """
        raise NotImplementedError

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        """The row vector ``f(w, c)`` in cvxpy (concave rows may only carry lower bounds, convex rows
        only upper bounds), using ``p[name]`` for ``rows.coefficients[name]``."""
        raise NotImplementedError

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        """The row vector ``f(w, c)`` in plain numpy, independently of cvxpy."""
        raise NotImplementedError

    def penalty_weight(self) -> float:
        """Weight ``rho`` of a soft form: the objective subtracts ``rho * f_0(w, c)`` (the first row).
        0 (no penalty) by default; only convex single-row families may have one."""
        return 0.0

    def implies_within_available(self, rows: Rows) -> np.ndarray | None:
        """Indices whose weight this family keeps at or below ``available_liquidity / NAV`` for any
        data (used to simplify other families exactly); ``None`` by default."""
        return None

    # ------------------------------------------------------------------ shared machinery
    def fail(self, message: str) -> InputError:
        """An :class:`InputError` whose message starts with this constraint's label."""
        return InputError(f"constraint '{self.label}': {message}")

    def resolve_checked(self, u: Universe) -> Rows:
        """:meth:`resolve`, after checking that ``u`` has what the family needs (holdings)."""
        if self.requires_holdings and not u.has_holdings:
            raise self.fail("needs current holdings to compare against: pass holdings (--holdings FILE)")
        return self.resolve(u)

    def compile(self, u: Universe, v: Vars, rows: Rows | None = None) -> Compiled:
        """Compile against variables ``v``: ``lower <= f <= upper`` with bounds as Parameters."""
        rows = self.resolve_checked(u) if rows is None else rows
        params = ParamSet(rows.coefficients, rows.nonneg)
        expr = self.expression(rows, params, v)
        if expr.shape == ():
            expr = cp.reshape(expr, (1,), order="C")
        lower_idx = np.flatnonzero(np.isfinite(rows.lower))
        upper_idx = np.flatnonzero(np.isfinite(rows.upper))
        equality = (
            lower_idx.size == len(rows.labels)
            and upper_idx.size == len(rows.labels)
            and bool(np.all(rows.lower == rows.upper))
        )
        bounds = ParamSet(_bound_arrays(rows, lower_idx, upper_idx, equality))
        cvx: list[cp.Constraint] = []
        if equality:
            cvx.append(expr == bounds["eq"])
        else:
            if lower_idx.size:
                cvx.append(_pick(expr, lower_idx, len(rows.labels)) >= bounds["lo"])
            if upper_idx.size:
                cvx.append(_pick(expr, upper_idx, len(rows.labels)) <= bounds["hi"])
        return Compiled(self, rows, params, lower_idx, upper_idx, equality, cvx, bounds, expr=expr)

    def update(self, compiled: Compiled, u: Universe) -> None:
        """Re-resolve on a new universe and assign the new numbers to the compiled parameters."""
        rows = self.resolve(u)
        if rows.labels != compiled.rows.labels or not _same_structure(rows.structure, compiled.rows.structure):
            raise InputError(
                f"constraint '{self.label}': its rows changed shape ({len(compiled.rows.labels)} -> {len(rows.labels)} "
                "rows or different members): compile a new program instead of updating this one"
            )
        if not np.array_equal(np.isfinite(rows.lower), np.isfinite(compiled.rows.lower)) or not np.array_equal(
            np.isfinite(rows.upper), np.isfinite(compiled.rows.upper)
        ):
            raise InputError(f"constraint '{self.label}': which rows are bounded changed: compile a new program")
        compiled.params.update(rows.coefficients)
        compiled.bounds.update(_bound_arrays(rows, compiled.lower_idx, compiled.upper_idx, compiled.equality))
        compiled.rows = rows

    def check(self, x: Point, u: Universe, rows: Rows | None = None) -> list[RowResult]:
        """Evaluate every row on allocation ``x`` with numpy and compare with its bounds."""
        rows = self.resolve(u) if rows is None else rows
        values = np.reshape(np.asarray(self.evaluate(rows, x, u), dtype=float), -1)
        if values.shape != (len(rows.labels),):
            raise RuntimeError(
                f"{type(self).__name__}.evaluate returned {values.shape}, expected {len(rows.labels)} rows"
            )
        below = rows.lower - values
        above = values - rows.upper
        violation = np.maximum(np.maximum(below, above), 0.0)
        slack = np.minimum(values - rows.lower, rows.upper - values)
        label = self.label
        return [
            RowResult(label, self.kind, rows.labels[r], float(values[r]), float(rows.lower[r]), float(rows.upper[r]),
                      float(slack[r]), float(violation[r]), rows.unit)
            for r in range(len(rows.labels))
        ]


def _pick(expr: cp.Expression, idx: np.ndarray, m: int) -> cp.Expression:
    return expr if idx.size == m else expr[idx]


def _bound_arrays(rows: Rows, lower_idx: np.ndarray, upper_idx: np.ndarray, equality: bool) -> dict[str, np.ndarray]:
    if equality:
        return {"eq": rows.lower}
    out = {}
    if lower_idx.size:
        out["lo"] = rows.lower[lower_idx]
    if upper_idx.size:
        out["hi"] = rows.upper[upper_idx]
    return out


def _same_structure(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not np.array_equal(np.asarray(x), np.asarray(y)):
                return False
        elif hasattr(x, "toarray") or hasattr(y, "toarray"):
            if (x != y).nnz if hasattr(x, "nnz") else x != y:
                return False
        elif x != y:
            return False
    return True


def as_list(value: str | Sequence[str] | None) -> list[str] | None:
    """A single string or a list of strings as a list (``None`` stays ``None``)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)
