"""What every objective term shares: its cvxpy expression, its numpy value and its marginal.

The objective is a sum of terms, each an income (``sign = +1``) or a cost (``sign = -1``)::

    maximize  sum_t sign_t * f_t(w, c)

in APY units (fractions of NAV a year; one-off costs are charged against one year of yield). A term
gives its magnitude ``f_t`` three ways: as a cvxpy expression (:meth:`Term.expression`) for the
program, as plain numpy (:meth:`Term.value`) for reports and the exact objective, and as the
derivative ``df_t/dw_i`` per position (:meth:`Term.marginal`) for explanations. Terms that are linear
in ``w`` give their coefficients instead (:meth:`Term.coefficients`); the program folds all of them
into one Parameter vector, so the solver sees one linear objective.

A new term is one class in one new module of this package, added to
:func:`bondfolio.solver.objective.objective_terms`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bondfolio._lazy import lazy_module
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["Term"]


class Term:
    """One part of the objective (see the module docstring)."""

    name: ClassVar[str]
    """How records, explanations and reports name the term."""
    sign: ClassVar[int]
    """+1 for an income, -1 for a cost."""
    linear: ClassVar[bool] = False
    """Whether the term is ``coefficients() @ w`` (folded into one Parameter by the program)."""
    one_off: ClassVar[bool] = False
    """A one-off cost (paid once per move): charged against ``objective.cost_horizon_days`` of yield."""
    scale: float = 1.0
    """One-off costs: ``365 / cost_horizon_days`` (1 by default, a year); :meth:`value` includes it,
    :meth:`amount` does not."""
    per_assembly: ClassVar[bool] = False
    """Whether the expression is built anew each time the program is assembled (terms whose model
    the solver refines between solves, e.g. rate-curve envelopes)."""

    @property
    def active(self) -> bool:
        """Whether the term contributes anything (inactive terms are left out of the program)."""
        return True

    def coefficients(self) -> np.ndarray:
        """Linear terms: the magnitude per unit of each weight."""
        raise NotImplementedError(f"{type(self).__name__} is not linear")

    def expression(self, v: Vars) -> cp.Expression:
        """Non-linear terms: the magnitude as a cvxpy expression (convex for costs, concave for
        incomes), DPP-compliant so re-solves update Parameters only."""
        raise NotImplementedError

    def constraints(self) -> list[cp.Constraint]:
        """Constraints defining the auxiliary variables of the last :meth:`expression` built."""
        return []

    def value(self, x: Point) -> float:
        """The magnitude at allocation ``x``, in numpy."""
        if self.linear:
            return float(self.coefficients() @ x.w)
        raise NotImplementedError

    def amount(self, x: Point) -> float:
        """The magnitude without :attr:`scale`: for one-off costs, what is paid (fraction of NAV)."""
        return self.value(x) / self.scale

    def marginal(self, x: Point) -> np.ndarray:
        """``d value / d w_i`` at ``x`` per position (a subgradient where the term has a kink)."""
        if self.linear:
            return np.asarray(self.coefficients(), dtype=float)
        raise NotImplementedError

    def update(self, universe: Universe) -> None:
        """Point the term's Parameters at a new universe of the same shape."""
