"""``cvar``: conditional value-at-risk over a scenario set, as a limit or a penalty (Rockafellar-Uryasev)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, ParamSet, Rows
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.base import OmitUnset
from bondfolio.inputs.scenarios import ScenarioSettings, build_scenarios, cvar
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["AGGREGATE_ENTRIES", "CVaR", "ScenarioMethod"]

#: Scenario blocks of at least this many entries (scenarios x opportunities) are solved by aggregated
#: scenarios unless the constraint sets ``method`` (measured in benchmarks/bench_cvar.py: below it the
#: full linear program compiles and solves in about 0.1 s).
AGGREGATE_ENTRIES = 100_000


class ScenarioMethod(StrEnum):
    """How a ``cvar`` constraint's scenarios enter the solve."""

    full = "full"
    """The Rockafellar-Uryasev LP inside the compiled program: a variable and a row per scenario."""
    aggregated = "aggregated"
    """Out of the compiled program: groups of scenarios aggregated into a few rows, refined until the
    bound is exact at the answer (:mod:`bondfolio.solver.cvar_cuts`); the same optimum."""


class CVaR(OmitUnset, Constraint):
    r"""Expected loss in the worst ``1 - alpha`` of scenarios, at most ``max`` and/or penalized.

    .. math::

        \mathrm{CVaR}_\alpha(w) = \min_t \; t + \frac{1}{1 - \alpha} \sum_s \pi_s \,(L_s w - t)_+ \le \text{max}

    in the Rockafellar-Uryasev linear form: variables ``t`` (at the optimum, the value-at-risk) and
    ``u_s >= L_s w - t``, ``u_s >= 0``. ``L_s w`` is the portfolio's loss in scenario ``s`` as a
    fraction of NAV and ``pi_s`` its probability (see :mod:`bondfolio.inputs.scenarios`: joint
    failures, rate shocks, depegs, a freeze, custom scenarios and normal samples). With ``penalty``
    the objective subtracts ``penalty * CVaR`` (a soft form; both may be given). The independent
    check recomputes CVaR by sorting the scenario losses of the final weights.

    With many scenarios (at least :data:`AGGREGATE_ENTRIES` scenario x opportunity entries, or
    ``method = "aggregated"``) the scenario block stays out of the compiled program: the family compiles
    to one epigraph variable ``z >= CVaR(w)``, bounded by aggregated scenario rows the solver refines
    until they are exact at the answer (:mod:`bondfolio.solver.cvar_cuts`), and the record says so.

    Units: fraction of NAV (0.05 = losing 5 % of NAV on average in the tail).
    """

    kind: Literal["cvar"] = "cvar"
    alpha: float = Field(default=0.95, ge=0.5, lt=1.0)
    """Confidence level: the tail is the worst ``1 - alpha`` of probability."""
    max: float | None = Field(default=None, ge=0.0)
    """Largest CVaR, fraction of NAV."""
    penalty: float = Field(default=0.0, ge=0.0)
    """Objective weight per unit of CVaR (APY per fraction of NAV lost in the tail)."""
    scenarios: ScenarioSettings = Field(default_factory=ScenarioSettings)
    method: ScenarioMethod | None = None
    """How the scenarios enter the solve (:class:`ScenarioMethod`); unset: ``aggregated`` from
    :data:`AGGREGATE_ENTRIES` scenario x opportunity entries, else ``full``. Same optimum either way."""

    omit_when_none = ("method",)
    label_excludes: ClassVar[frozenset[str]] = frozenset({"method"})

    @model_validator(mode="after")
    def _form(self) -> CVaR:
        if self.max is None and self.penalty == 0:
            raise ValueError("give 'max' (a limit), 'penalty' (a cost in the objective), or both")
        return self

    def penalty_weight(self) -> float:
        return self.penalty

    def resolve(self, u: Universe) -> Rows:
        s = build_scenarios(u, self.scenarios)
        upper = np.inf if self.max is None else self.max
        return Rows([f"alpha={self.alpha:g}"], -np.inf, upper, unit="fraction of NAV",
                    coefficients={"losses": s.losses, "probability": s.probability},
                    structure={"scenarios": s.names}, nonneg=("probability",))

    def method_for(self, rows: Rows) -> ScenarioMethod:
        """The method this constraint's scenario block is solved by (see :attr:`method`)."""
        if self.method is not None:
            return self.method
        entries = rows.coefficients["losses"].size
        return ScenarioMethod.aggregated if entries >= AGGREGATE_ENTRIES else ScenarioMethod.full

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        if v.allow_outside and self.method_for(rows) is ScenarioMethod.aggregated:
            z = cp.Variable(name=f"cvar_{self.label}")
            v.outside[self.label] = z  # its rows are generated by the solver (bondfolio.solver.cvar_cuts)
            return z
        count = len(rows.structure["scenarios"])
        t = cp.Variable(name=f"var_{self.label}")
        excess = cp.Variable(count, nonneg=True, name=f"tail_{self.label}")
        tail = excess >= p["losses"] @ v.w - t
        v.definitions.append(tail)
        v.named[f"{self.label}:tail"] = tail  # its duals price each position's tail loss (explain)
        return t + (p["probability"] @ excess) / (1.0 - self.alpha)

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        losses = rows.coefficients["losses"] @ x.w
        return np.array([cvar(losses, rows.coefficients["probability"], self.alpha)[0]])
