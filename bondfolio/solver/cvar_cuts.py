r"""CVaR over many scenarios, solved without the scenario block in the compiled program.

Written as the Rockafellar-Uryasev LP, a ``cvar`` constraint over ``S`` scenarios adds ``S`` variables
and a dense ``S x n`` block of rows: at 10,000 scenarios and 1,000 positions, ten million entries that
cost tens of seconds in cvxpy's canonicalization and in the solver. Instead the compiled program carries
one epigraph variable ``z`` per such constraint (``z <= max``; ``- penalty * z`` in the objective), and
the scenarios enter as a few aggregated rows that this module adds and refines itself.

The model
---------
Partition the scenarios (of positive probability) into groups ``G`` with probability ``p_G`` and mean
loss row ``Lbar_G = sum_{s in G} p_s L_s / p_G``. For any partition

.. math::

    z \ge t + \frac{1}{1 - \alpha} \sum_G p_G u_G, \qquad u_G \ge \bar L_G w - t, \qquad u_G \ge 0

is implied by ``z >= CVaR_alpha(w)`` (Jensen: ``p_G (Lbar_G w - t)_+ <= sum_{s in G} p_s (L_s w - t)_+``),
so the *master* (the compiled program plus these rows) is a relaxation of the full program: at least as
good an optimum, and infeasible whenever the full program is. The bound is exact at ``(w, t)`` when no
group straddles ``t``. Two groups, the tail at some ``w_k`` and the rest, give the aggregated cut of
Kunzi-Bay and Mayer's CVaRMin (Computational Management Science, 2006); with ``t`` kept a variable and
the groups refined, this is the primal-dual aggregation of Espinoza and Moreno (Computational
Optimization and Applications, 2014). Loss rows are linear in the weights (``L_s w``: idle cash and
margin carry no loss), so nothing else enters.

The loop
--------
Start from one group (the mean loss). Solve the master; compute the true CVaR of its ``w`` by sorting the
``S`` losses (:func:`~bondfolio.inputs.scenarios.cvar`). Stop when it exceeds the master's bound by at
most :data:`GAP`: then ``w`` is feasible for the full program and, the master being a relaxation,
optimal (the penalty form compares with ``z``, the limit form with ``max``). Otherwise split every
group that straddles the master's ``t``. During the first :data:`MERGE_ITERATIONS` iterations, the
scenarios that lie far from ``t`` (farther than their loss moved since the previous iterate) and belong
to groups the master prices as wholly in the tail (multiplier ``p_G / (1 - alpha)`` times the bound's)
or wholly out (multiplier 0) are also merged into one tail group and one body group: the current master
solution stays optimal for the merged rows, and the master stays small (a plain Kelley loop over cuts
stalls where this does not). After that only splits happen, so the loop ends in finitely many steps: at
worst every scenario alone, which is the full LP.

Masters
-------
A linear program solved by HiGHS is one live HiGHS model: cvxpy's problem data of the compiled program
loaded once, the group rows replaced at each iteration and re-solved from the previous basis; the final
answer is unpacked into the program's variables and constraints by cvxpy, as if it had solved it. Any
other program or solver re-assembles the compiled program plus the group rows in cvxpy at each
iteration. Either way the answer then goes through the independent check like any other.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Compiled
from bondfolio.constraints.cvar import CVaR
from bondfolio.constraints.variables import Vars
from bondfolio.errors import SolverError
from bondfolio.inputs.scenarios import cvar

if TYPE_CHECKING:
    import cvxpy as cp
    from scipy import sparse
else:
    cp = lazy_module("cvxpy", globals(), "cp")
    sparse = lazy_module("scipy.sparse", globals(), "sparse")

__all__ = ["GAP", "MAX_ITERATIONS", "MERGE_ITERATIONS", "Block", "CvxpyMaster", "HighsMaster", "Infeasible", "Master",
           "MasterAnswer", "Unbounded", "blocks_of", "refine", "run_loop"]

#: Stop when the answer's true CVaR exceeds the master's bound by at most this (fraction of NAV):
#: 100 times below the independent check's default tolerance.
GAP = 1e-9

#: Iterations during which groups priced alike may also be merged (after them, splits only).
MERGE_ITERATIONS = 30

#: Master solves before giving up (never reached in the tests or benchmarks: tens at most).
MAX_ITERATIONS = 500

#: A group's price (its multiplier over ``p_G / (1 - alpha)`` times the bound's) within this of 1 or
#: 0 counts as wholly in the tail or wholly out of it.
PRICE_TOLERANCE = 1e-7


class Solvable(Protocol):
    """What the loop needs of a program (:class:`bondfolio.solver.program.Program`)."""

    vars: Vars
    compiled: list[Compiled]
    problem: cp.Problem
    partitions: dict[str, np.ndarray]
    """Each aggregated constraint's last partition, by label: the next solve starts from it."""


@dataclass
class Block:
    """One ``cvar`` constraint kept out of the compiled program: its epigraph variable and partition."""

    compiled: Compiled
    z: cp.Variable
    active: np.ndarray = field(init=False)
    """Indices of the scenarios of positive probability (the others never weigh in CVaR)."""
    labels: np.ndarray = field(init=False)
    """Group of each active scenario, ``0 .. groups - 1``."""
    previous: tuple[np.ndarray, float] | None = None
    """Active losses and ``t`` at the previous iterate."""
    solves: int = 0
    gap: float = np.inf

    def __post_init__(self) -> None:
        self.active = np.flatnonzero(self.probability > 0)
        self.labels = np.zeros(self.active.size, dtype=np.int64)

    def start(self, previous: np.ndarray | None) -> None:
        """Start the loop from ``previous`` (the partition a former solve of the same program ended with,
        still a relaxation for any data) when it fits, else from one group."""
        fits = previous is not None and previous.size == self.active.size
        self.labels = previous.copy() if fits and previous is not None else np.zeros(self.active.size, dtype=np.int64)
        self.previous = None
        self.solves = 0
        self.gap = np.inf

    @property
    def constraint(self) -> CVaR:
        c = self.compiled.constraint
        assert isinstance(c, CVaR)
        return c

    @property
    def label(self) -> str:
        return self.constraint.label

    @property
    def losses(self) -> np.ndarray:
        return np.asarray(self.compiled.rows.coefficients["losses"])

    @property
    def probability(self) -> np.ndarray:
        return np.asarray(self.compiled.rows.coefficients["probability"])

    @property
    def alpha(self) -> float:
        return self.constraint.alpha

    @property
    def groups(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(p_G, Lbar_G)``: each group's probability and probability-weighted mean loss row."""
        k = self.groups
        p = self.probability[self.active]
        pg = np.bincount(self.labels, weights=p, minlength=k)
        indicator = sparse.csr_matrix((p, (self.labels, self.active)), shape=(k, self.probability.size))
        return pg, np.asarray(indicator @ self.losses) / pg[:, None]

    def singletons(self) -> None:
        """Every scenario its own group: the master is then the full program."""
        self.labels = np.arange(self.active.size, dtype=np.int64)

    def report(self) -> dict[str, Any]:
        return {"constraint": self.label, "method": "aggregated", "scenarios": int(self.probability.size),
                "master_solves": self.solves, "groups": self.groups, "gap": float(self.gap)}

    def multipliers(self, duals: np.ndarray) -> np.ndarray:
        """Per scenario, its share of its group's multiplier (by probability): the multipliers the full
        program's tail rows ``u_s >= L_s w - t`` would have (exact once the partition is)."""
        pg = np.bincount(self.labels, weights=self.probability[self.active], minlength=self.groups)
        out = np.zeros(self.probability.size)
        out[self.active] = duals[self.labels] * self.probability[self.active] / pg[self.labels]
        return out


def blocks_of(program: Solvable) -> list[Block]:
    """The program's families kept out of the compiled program (empty for most programs)."""
    outside = program.vars.outside
    return [Block(comp, outside[comp.constraint.label]) for comp in program.compiled
            if comp.constraint.label in outside]


def refine(labels: np.ndarray, loss: np.ndarray, t: float, price: np.ndarray | None,
           previous: tuple[np.ndarray, float] | None) -> np.ndarray:
    """The next partition: every group split at ``t``, and, given the master's ``price`` per group
    (``None``: splits only), the scenarios far from ``t`` in groups priced wholly in (1) or wholly out
    (0) merged into one tail group and one body group. Labels are renumbered ``0 .. k - 1`` in a
    deterministic order."""
    above = loss > t
    key = 2 * labels + above
    if price is not None and previous is not None:
        moved = np.abs(loss - previous[0]) + abs(t - previous[1])
        far = np.abs(loss - t) > moved
        tail = (price >= 1 - PRICE_TOLERANCE)[labels]
        body = (price <= PRICE_TOLERANCE)[labels]
        key = np.where(far & above & tail, -2, np.where(far & ~above & body, -1, key))
    _, new = np.unique(key, return_inverse=True)
    return np.asarray(new, dtype=np.int64).reshape(-1)


class MasterAnswer(NamedTuple):
    """A master program's solution, as the loop needs it."""

    w: np.ndarray
    z: list[float]
    """Each block's epigraph variable."""
    t: list[float]
    """Each block's value-at-risk variable."""
    duals: list[np.ndarray]
    """Each block's group-row multipliers (objective units times the solver's scale, >= 0)."""
    bound_dual: list[float]
    """Each block's multiplier on ``z >= t + sum_G p_G u_G / (1 - alpha)``."""


class Master:
    """What the loop needs of a master program (:class:`HighsMaster`, :class:`CvxpyMaster`)."""

    problem: cp.Problem | None
    """The cvxpy problem whose value and statistics the answer reports."""
    inaccurate: bool

    def set_groups(self, blocks: list[Block]) -> None:
        raise NotImplementedError

    def solve(self) -> MasterAnswer:
        """Raises :class:`Infeasible` when the master (hence the full program) is infeasible,
        :class:`Unbounded` when the master is unbounded, :class:`SolverError` when it finds no answer."""
        raise NotImplementedError


class Infeasible(Exception):
    """The master is infeasible, hence the full program (the master is a relaxation of it)."""


class Unbounded(Exception):
    """The master is unbounded: its aggregated rows do not bound some direction the full program may."""


def run_loop(master: Master, blocks: list[Block], policy: str,
             partitions: dict[str, np.ndarray] | None = None) -> MasterAnswer:
    """Solve, check the true CVaR of each block, refine, until every block's bound is exact to :data:`GAP`.

    Each block starts from its partition in ``partitions`` (by label) when there is one, and leaves its
    final partition there. An unbounded master is re-solved with every scenario its own group (the full
    program), whose verdict is final.
    """
    partitions = {} if partitions is None else partitions
    for b in blocks:
        b.start(partitions.get(b.label))
    master.set_groups(blocks)
    iteration = 0
    while True:
        iteration += 1
        try:
            answer = master.solve()
        except Unbounded:
            if all(b.groups == b.active.size for b in blocks):
                raise
            for b in blocks:
                b.singletons()
            master.set_groups(blocks)
            continue
        done = True
        for k, b in enumerate(blocks):
            b.solves += 1
            loss = b.losses @ answer.w
            value = cvar(loss, b.probability, b.alpha)[0]
            c = b.constraint
            bound = answer.z[k] if c.penalty > 0 or c.max is None else float(b.compiled.rows.upper[0])
            b.gap = value - bound
            active = loss[b.active]
            t = answer.t[k]
            split = refine(b.labels, active, t, None, None)
            exact = split.max(initial=-1) + 1 == b.groups  # no group straddles t: the bound is exact at (w, t)
            if b.gap <= GAP or exact:
                continue
            done = False
            price = None
            if iteration <= MERGE_ITERATIONS and answer.bound_dual[k] > 0:
                pg = np.bincount(b.labels, weights=b.probability[b.active], minlength=b.groups)
                price = answer.duals[k] / (pg / (1 - b.alpha) * answer.bound_dual[k])
            b.labels = refine(b.labels, active, t, price, b.previous) if price is not None else split
            b.previous = (active, t)
        if done:
            for b in blocks:
                partitions[b.label] = b.labels.copy()
            return answer
        if iteration >= MAX_ITERATIONS:
            worst = max(blocks, key=lambda b: b.gap)
            raise SolverError(f"policy '{policy}': constraint '{worst.label}': the aggregated scenarios did not "
                              f"converge in {MAX_ITERATIONS} master solves (CVaR {worst.gap:.3g} above the bound "
                              f"with {worst.groups} groups; at most {GAP:g} allowed): set method = 'full' on the "
                              "constraint")
        master.set_groups(blocks)


# ---------------------------------------------------------------------------------------------- HiGHS
class _Solution:
    """What cvxpy's HiGHS interface reads of a ``HighsSolution``: the compiled program's part only."""

    def __init__(self, col_value: np.ndarray, row_dual: np.ndarray) -> None:
        self.col_value = col_value
        self.row_dual = row_dual


class HighsMaster(Master):
    """The master as one live HiGHS model, loaded once from cvxpy's problem data of the compiled program
    (the caller silences HiGHS's banner first: :func:`bondfolio.solver.solve.silence_highs_banner`)."""

    def __init__(self, program: Solvable, blocks: list[Block], reuse: bool, options: dict[str, Any]) -> None:
        import highspy

        self.problem = program.problem
        data, self.chain, self.inverse = program.problem.get_problem_data(cp.HIGHS, ignore_dpp=not reuse)
        offsets = _var_offsets(self.inverse, [program.vars.w, *(b.z for b in blocks)])
        n = program.vars.n
        self.w_cols = np.arange(offsets[program.vars.w.id], offsets[program.vars.w.id] + n, dtype=np.int32)
        self.z_cols = [offsets[b.z.id] for b in blocks]
        h = highspy.Highs()
        self.h = h
        self.hs = highspy
        h.setOptionValue("output_flag", False)
        for name, value in options.items():
            h.setOptionValue(name, value)
        h.passModel(_highs_lp(highspy, data))
        self.cols, self.rows = int(data[cp.settings.C].size), int(data[cp.settings.A].shape[0])
        inf = highspy.kHighsInf
        self.t_cols, self.bound_rows = [], []
        for k in range(len(blocks)):
            self.t_cols.append(h.getNumCol())
            h.addVar(-inf, inf)
            self.bound_rows.append(h.getNumRow())
            h.addRow(0.0, inf, 2, np.array([self.z_cols[k], self.t_cols[k]], dtype=np.int32), np.array([1.0, -1.0]))
        self.fixed_cols, self.fixed_rows = h.getNumCol(), h.getNumRow()
        self.group_rows: list[np.ndarray] = []
        self.seconds = 0.0
        self.inaccurate = False

    def set_groups(self, blocks: list[Block]) -> None:
        h, inf = self.h, self.hs.kHighsInf
        extra_rows, extra_cols = h.getNumRow() - self.fixed_rows, h.getNumCol() - self.fixed_cols
        if extra_rows:
            h.deleteRows(extra_rows, np.arange(self.fixed_rows, h.getNumRow(), dtype=np.int32))
        if extra_cols:
            h.deleteCols(extra_cols, np.arange(self.fixed_cols, h.getNumCol(), dtype=np.int32))
        self.group_rows = []
        n = self.w_cols.size
        for k, b in enumerate(blocks):
            pg, lbar = b.rows()
            m = pg.size
            first_col = h.getNumCol()
            # u_G >= 0, with -p_G / (1 - alpha) in the bound row z - t - sum_G p_G u_G / (1 - alpha) >= 0
            h.addCols(m, np.zeros(m), np.zeros(m), np.full(m, inf), m, np.arange(m, dtype=np.int32),
                      np.full(m, self.bound_rows[k], dtype=np.int32), -pg / (1 - b.alpha))
            u_cols = np.arange(first_col, first_col + m, dtype=np.int32)
            # -Lbar_G w + t + u_G >= 0
            index = np.empty((m, n + 2), dtype=np.int32)
            index[:, :n] = self.w_cols
            index[:, n] = self.t_cols[k]
            index[:, n + 1] = u_cols
            value = np.empty((m, n + 2))
            value[:, :n] = -lbar
            value[:, n:] = 1.0
            first_row = h.getNumRow()
            h.addRows(m, np.zeros(m), np.full(m, inf), index.size, np.arange(0, index.size, n + 2, dtype=np.int32),
                      index.ravel(), value.ravel())
            self.group_rows.append(np.arange(first_row, first_row + m))

    def solve(self) -> MasterAnswer:
        h, hs = self.h, self.hs
        start = time.perf_counter()
        h.run()
        status = h.getModelStatus()
        if status == hs.HighsModelStatus.kUnboundedOrInfeasible:  # presolve's verdict: ask the simplex
            h.setOptionValue("presolve", "off")
            h.run()
            status = h.getModelStatus()
            h.setOptionValue("presolve", "choose")
        self.seconds += time.perf_counter() - start
        if status == hs.HighsModelStatus.kInfeasible:
            raise Infeasible()
        if status == hs.HighsModelStatus.kUnbounded:
            raise Unbounded()
        if status != hs.HighsModelStatus.kOptimal:
            raise SolverError(f"HiGHS stopped with {h.modelStatusToString(status)} on the aggregated master")
        sol = h.getSolution()
        x, y = np.asarray(sol.col_value), np.asarray(sol.row_dual)
        return MasterAnswer(x[self.w_cols], [float(x[c]) for c in self.z_cols], [float(x[c]) for c in self.t_cols],
                            [np.maximum(y[r], 0.0) for r in self.group_rows],
                            [max(float(y[r]), 0.0) for r in self.bound_rows])

    def unpack(self) -> None:
        """Give the compiled program's variables and constraints the last answer (cvxpy's own inversion)."""
        sol = self.h.getSolution()
        results = {"solution": _Solution(np.asarray(sol.col_value)[:self.cols], np.asarray(sol.row_dual)[:self.rows]),
                   "info": self.h.getInfo(), "model_status": "kOptimal", "run_time": self.seconds}
        assert self.problem is not None
        self.problem.unpack_results(results, self.chain, self.inverse)


def _var_offsets(inverse: list[Any], variables: list[cp.Variable]) -> dict[int, int]:
    """Columns of ``variables`` in cvxpy's problem data (the matrix stuffing's offsets)."""
    wanted = {v.id for v in variables}
    for item in reversed(inverse):
        offsets = getattr(item, "var_offsets", None)
        if isinstance(offsets, dict) and wanted <= offsets.keys():
            return {k: int(offsets[k]) for k in wanted}
    raise SolverError("cvxpy's problem data does not place the weights and CVaR variables (unexpected "
                      "cvxpy version): set method = 'full' on the cvar constraint")


def _highs_lp(hs: Any, data: dict[str, Any]) -> Any:
    """The HiGHS model of cvxpy's conic problem data, as cvxpy's HiGHS interface builds it:
    ``min c'x`` with the first ``zero`` rows of ``A x <= b`` equalities."""
    s = cp.settings
    inf = hs.kHighsInf
    a = data[s.A].tocsc()
    b = np.asarray(data[s.B], dtype=float)
    eq = int(data[s.DIMS].zero)
    lp = hs.HighsLp()
    lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
    lp.offset_ = 0.0
    lp.col_cost_ = np.asarray(data[s.C], dtype=float)
    lp.row_lower_ = np.concatenate([b[:eq], np.full(b.size - eq, -inf)])
    lp.row_upper_ = b
    lower, upper = data.get(s.LOWER_BOUNDS), data.get(s.UPPER_BOUNDS)
    lp.col_lower_ = np.full(a.shape[1], -inf) if lower is None else np.asarray(lower, dtype=float)
    lp.col_upper_ = np.full(a.shape[1], inf) if upper is None else np.asarray(upper, dtype=float)
    lp.a_matrix_.format_ = hs.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    return lp


# ---------------------------------------------------------------------------------------------- cvxpy
class CvxpyMaster(Master):
    """The master re-assembled in cvxpy at each iteration: the compiled program plus the group rows."""

    def __init__(self, program: Solvable, blocks: list[Block], solver: str, options: dict[str, Any]) -> None:
        self.program = program
        self.solver = solver
        self.options = options
        self.parts: list[tuple[cp.Variable, cp.Constraint, cp.Constraint]] = []
        self.problem: cp.Problem | None = None
        self.blocks = blocks
        self.inaccurate = False
        """Whether the last master solve was ``optimal_inaccurate``."""

    def set_groups(self, blocks: list[Block]) -> None:
        w = self.program.vars.w
        self.parts = []
        constraints = list(self.program.problem.constraints)
        for b in blocks:
            pg, lbar = b.rows()
            t = cp.Variable(name=f"var_{b.label}")
            u = cp.Variable(pg.size, nonneg=True, name=f"groups_{b.label}")
            rows = u >= lbar @ w - t
            bound = b.z >= t + (pg / (1 - b.alpha)) @ u
            self.parts.append((t, rows, bound))
            constraints += [rows, bound]
        self.problem = cp.Problem(self.program.problem.objective, constraints)

    def solve(self) -> MasterAnswer:
        assert self.problem is not None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            self.problem.solve(solver=self.solver, ignore_dpp=True, warm_start=False, **self.options)
        status = self.problem.status
        if status == cp.INFEASIBLE:
            raise Infeasible()
        if status == cp.UNBOUNDED:
            raise Unbounded()
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or self.program.vars.w.value is None:
            raise SolverError(f"{self.solver} returned {status} on the aggregated master")
        self.inaccurate = status == cp.OPTIMAL_INACCURATE
        return MasterAnswer(np.asarray(self.program.vars.w.value, dtype=float),
                            [float(np.asarray(b.z.value)) for b in self.blocks],
                            [float(np.asarray(t.value)) for t, _, _ in self.parts],
                            [np.maximum(np.asarray(rows.dual_value, dtype=float).reshape(-1), 0.0)
                             for _, rows, _ in self.parts],
                            [max(float(np.asarray(bound.dual_value)), 0.0) for _, _, bound in self.parts])
