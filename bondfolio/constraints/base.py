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

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.variables import Point, Vars
from bondfolio.errors import ConstraintCompileError, InputError
from bondfolio.inputs.policy import ConstraintSpec
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["Checks", "Compiled", "Constraint", "Linear", "ParamSet", "RowResult", "Rows"]


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
    """Named cvxpy Parameters created from arrays, updatable in place for re-solves.

    Each Parameter is made when an expression first asks for it: a family that keeps a block out of
    the compiled program (``cvar`` over many scenarios) never pays for validating its numbers in cvxpy.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], nonneg: Sequence[str] = (), owner: str = "") -> None:
        self._arrays = {name: np.asarray(value, dtype=float) for name, value in arrays.items()}
        self._nonneg = set(nonneg)
        self._owner = owner
        self._params: dict[str, cp.Parameter] = {}

    def __getitem__(self, name: str) -> cp.Parameter:
        param = self._params.get(name)
        if param is None:
            value = self._arrays[name]
            label = f"{self._owner}:{name}" if self._owner else name  # the family's label, so cvxpy's messages name it
            param = cp.Parameter(value.shape, name=label, value=value, nonneg=name in self._nonneg)
            self._params[name] = param
        return param

    def update(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Assign new values; shapes must match the compiled ones."""
        for name, value in arrays.items():
            value = np.asarray(value, dtype=float)
            if name in self._params:
                self._params[name].value = value
            elif value.shape != self._arrays[name].shape:
                raise ValueError(f"{self._owner}:{name}: shape {value.shape}, compiled {self._arrays[name].shape}")
            self._arrays[name] = value


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
class Linear:
    """A family's rows as a linear map: ``f = W w + cash * c + T a`` with ``a`` the trade sizes
    (:attr:`~bondfolio.constraints.variables.Vars.trade_size`).

    What the direct conic assembly (:mod:`bondfolio.solver.direct`) reads instead of compiling the
    family's cvxpy expression: the same numbers (``rows.coefficients``), so the two agree exactly.
    """

    w: Any
    """``W``: a scipy sparse matrix, rows x n."""
    cash: np.ndarray
    """The cash coefficient of each row."""
    trade: Any = None
    """``T``: a scipy sparse matrix, rows x n, or ``None`` when no row reads the trade sizes."""

    @staticmethod
    def of(m: int, n: int, rows: Any, cols: Any, values: Any = 1.0, cash: Any = 0.0,
           trade: tuple[Any, Any, Any] | None = None) -> Linear:
        """From (row, column, value) triplets over the weights (and ``trade``'s over the trade sizes)."""
        import scipy.sparse as sp

        def matrix(r: Any, c: Any, v: Any) -> Any:
            r, c = np.asarray(r, dtype=np.intp), np.asarray(c, dtype=np.intp)
            return sp.csr_array((np.broadcast_to(np.asarray(v, dtype=float), c.shape), (r, c)), shape=(m, n))

        t = None if trade is None else matrix(*trade)
        return Linear(matrix(rows, cols, values), np.broadcast_to(np.asarray(cash, dtype=float), (m,)).copy(), t)


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


class Checks(Sequence[RowResult]):
    """The independent check of a whole program: per family, the arrays of row values, bounds and
    violations, with each :class:`RowResult` made only when read (a book of n = 10,000 has 40,000 rows,
    and deciding whether an answer passes needs only the largest violation)."""

    def __init__(self) -> None:
        self._blocks: list[tuple[str, str, list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]] = []
        self._starts: list[int] = []
        self._size = 0
        self._worst = 0.0

    def add(self, constraint: str, kind: str, labels: list[str], values: np.ndarray, lower: np.ndarray,
            upper: np.ndarray, violation: np.ndarray, unit: str) -> None:
        """One family's rows (``violation`` as :meth:`Constraint.row_values` gives it)."""
        self._blocks.append((constraint, kind, labels, values, lower, upper, violation, unit))
        self._starts.append(self._size)
        self._size += len(labels)
        self._worst = max(self._worst, float(violation.max(initial=0.0)))

    def extend_results(self, results: Sequence[RowResult]) -> None:
        """Rows already checked one by one (the fixed-cost term's)."""
        for r in results:
            self.add(r.constraint, r.kind, [r.row], np.array([r.value]), np.array([r.lower]), np.array([r.upper]),
                     np.array([r.violation]), r.unit)

    @property
    def max_violation(self) -> float:
        return self._worst

    def __len__(self) -> int:
        return self._size

    def _row(self, block: int, r: int) -> RowResult:
        constraint, kind, labels, values, lower, upper, violation, unit = self._blocks[block]
        value, lo, hi = float(values[r]), float(lower[r]), float(upper[r])
        return RowResult(constraint, kind, labels[r], value, lo, hi, float(np.minimum(value - lo, hi - value)),
                         float(violation[r]), unit)

    def worst(self) -> RowResult | None:
        """The first row with the largest violation (``max(checks, key=violation)``), or ``None``."""
        best: tuple[float, int, int] | None = None
        for block, (*_, violation, _) in enumerate(self._blocks):
            if violation.size:
                r = int(np.argmax(violation))
                if best is None or violation[r] > best[0]:
                    best = (float(violation[r]), block, r)
        return None if best is None else self._row(best[1], best[2])

    def violations(self, tol: float) -> list[RowResult]:
        """The rows violated by more than ``tol``, in order."""
        return [self._row(block, int(r)) for block, (*_, violation, _) in enumerate(self._blocks)
                for r in np.flatnonzero(violation > tol)]

    def __getitem__(self, index: int) -> RowResult:  # type: ignore[override]
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError(index)
        import bisect

        block = bisect.bisect_right(self._starts, index) - 1
        return self._row(block, index - self._starts[block])

    def __iter__(self) -> Iterator[RowResult]:
        for block, (_, _, labels, *_rest) in enumerate(self._blocks):
            for r in range(len(labels)):
                yield self._row(block, r)


class Constraint(ConstraintSpec):
    """A constraint family: its parameters plus the methods that compile and check it.

    Subclasses document their math and units in the docstring (``.. math::``).
    """

    requires_holdings: ClassVar[bool] = False
    """Whether the family compares against current holdings (an error without them)."""
    dcp_rows_all: ClassVar[bool] = False
    """Check the curvature of every row, not only the first of each side (rows of one family share
    one formula; families whose rows differ in form set this)."""
    relaxable: ClassVar[bool] = True
    """Whether an infeasibility diagnosis may propose relaxing it (false for the built-in physical
    facts: the budget, long-only deposits, no deposits into frozen markets)."""
    own_bound: ClassVar[bool] = False
    """Whether each row bounds one position on its own (row label = the opportunity id): explanations
    report these as the position's own bounds rather than as shared constraints."""
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

    def linear(self, rows: Rows, v: Vars) -> Linear | None:
        """The rows as a linear map of weights, cash and trade sizes (:class:`Linear`), for the direct
        conic assembly of large books (:mod:`bondfolio.solver.direct`). ``None`` (the default) when the
        rows are not linear in those: a program with such a family is solved through cvxpy."""
        return None

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
        params = ParamSet(rows.coefficients, rows.nonneg, owner=self.label)
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
        bounds = ParamSet(_bound_arrays(rows, lower_idx, upper_idx, equality), owner=f"{self.label}:bound")
        cvx: list[cp.Constraint] = []
        if equality:
            cvx.append(expr == bounds["eq"])
        else:
            if lower_idx.size:
                cvx.append(_pick(expr, lower_idx, len(rows.labels)) >= bounds["lo"])
            if upper_idx.size:
                cvx.append(_pick(expr, upper_idx, len(rows.labels)) <= bounds["hi"])
        self._check_dcp(expr, rows, lower_idx, upper_idx, equality)
        return Compiled(self, rows, params, lower_idx, upper_idx, equality, cvx, bounds, expr=expr)

    def _check_dcp(self, expr: cp.Expression, rows: Rows, lower_idx: np.ndarray, upper_idx: np.ndarray,
                   equality: bool) -> None:
        """Raise a :class:`~bondfolio.errors.BondfolioError` naming this family and its first offending
        row when a bounded side is not DCP (an upper bound needs a convex row, a lower bound a concave
        row, an equality an affine row), instead of a bare cvxpy error at solve time."""
        m = len(rows.labels)
        sides = [("equality", np.arange(m), "affine")] if equality else []
        if not equality:
            sides += [("lower bound", lower_idx, "concave"), ("upper bound", upper_idx, "convex")]
        for side, idx, needed in sides:
            for r in idx:
                row = expr[int(r)] if m > 1 else expr
                ok = {"affine": row.is_affine, "concave": row.is_concave, "convex": row.is_convex}[needed]()
                if not ok:
                    raise ConstraintCompileError(
                        f"constraint '{self.label}' ({type(self).__name__}): row '{rows.labels[int(r)]}' has a "
                        f"{side} but its expression is not {needed} (cvxpy curvature "
                        f"{row.curvature}), so the program would not be convex (DCP): bound it on the other side "
                        "or reformulate the family's expression")
                if not self.dcp_rows_all:
                    break

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

    def row_values(self, x: Point, u: Universe, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """Every row evaluated on allocation ``x`` with numpy, and how far each lies outside its bounds
        (0 when satisfied): the independent check, without the per-row report objects."""
        values = np.reshape(np.asarray(self.evaluate(rows, x, u), dtype=float), -1)
        if values.shape != (len(rows.labels),):
            raise RuntimeError(
                f"{type(self).__name__}.evaluate returned {values.shape}, expected {len(rows.labels)} rows"
            )
        return values, np.maximum(np.maximum(rows.lower - values, values - rows.upper), 0.0)

    def check_into(self, checks: Checks, x: Point, u: Universe, rows: Rows) -> None:
        """:meth:`check`'s rows added to ``checks`` as arrays (no per-row objects)."""
        values, violation = self.row_values(x, u, rows)
        checks.add(self.label, self.kind, rows.labels, values, rows.lower, rows.upper, violation, rows.unit)

    def check(self, x: Point, u: Universe, rows: Rows | None = None) -> list[RowResult]:
        """Evaluate every row on allocation ``x`` with numpy and compare with its bounds."""
        rows = self.resolve(u) if rows is None else rows
        values, violation = self.row_values(x, u, rows)
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
