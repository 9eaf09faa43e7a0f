"""Per-opportunity weight bounds: ``max_weight``, ``min_weight`` and the intrinsic ``long_only``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, ParamSet, Rows
from bondfolio.constraints.select import Selector
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
else:
    cp = lazy_module("cvxpy", globals(), "cp")

__all__ = ["LongOnly", "MaxWeight", "MinWeight", "NoNewDeposits"]


class _WeightBound(Constraint):
    select: Selector = Field(default_factory=Selector)
    """Which opportunities the bound applies to (all by default)."""
    limits: dict[str, float] = Field(default_factory=dict)
    """Per-id bounds overriding the common one; each id must be selected."""

    bound_side: ClassVar[str | None] = "upper"
    own_bound: ClassVar[bool] = True

    def _bound(self) -> float | None:
        raise NotImplementedError

    def resolve(self, u: Universe) -> Rows:
        mask = self.select.mask(u, self.label)
        idx = np.flatnonzero(mask)
        common = self._bound()
        bound = np.full(u.n, np.nan if common is None else common)
        problems = []
        for key, value in self.limits.items():
            i = u.index_of(key)
            if i is None or not mask[i]:
                where = "is not an opportunity of the snapshot" if i is None else "is not selected by 'select'"
                problems.append(f"limits names '{key}', which {where}")
                continue
            bound[i] = value
        if problems:
            raise self.fail("; ".join(problems))
        idx = idx[np.isfinite(bound[idx])]
        values = bound[idx]
        inf = np.full(idx.size, np.inf)
        lower, upper = (-inf, values) if self.bound_side == "upper" else (values, inf)
        return Rows(u.ids_at(idx), lower, upper, structure={"idx": idx})

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        return v.w[rows.structure["idx"]]

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return x.w[rows.structure["idx"]]


class MaxWeight(_WeightBound):
    r"""Upper bound on single positions.

    .. math:: w_i \le \text{max} \quad (\text{or } \text{limits}_i) \qquad i \in \text{select}

    Weights are fractions of NAV (signed notional for hedges).
    """

    kind: Literal["max_weight"] = "max_weight"
    max: float | None = Field(default=None, ge=-10.0, le=10.0)
    """Common upper bound, fraction of NAV; ``None`` bounds only the ids in ``limits``."""

    def _bound(self) -> float | None:
        return self.max


class MinWeight(_WeightBound):
    r"""Lower bound on single positions.

    .. math:: w_i \ge \text{min} \quad (\text{or } \text{limits}_i) \qquad i \in \text{select}

    Weights are fractions of NAV (a negative minimum bounds a hedge's short notional).
    """

    kind: Literal["min_weight"] = "min_weight"
    min: float | None = Field(default=None, ge=-10.0, le=10.0)
    """Common lower bound, fraction of NAV; ``None`` bounds only the ids in ``limits``."""

    bound_side: ClassVar[str | None] = "lower"

    def _bound(self) -> float | None:
        return self.min


class LongOnly(_WeightBound):
    r"""Deposits cannot be negative: added by the solver to every program, not written in policies.

    .. math:: w_i \ge 0 \qquad i \notin \text{hedges}
    """

    kind: Literal["long_only"] = "long_only"
    policy_kind: ClassVar[bool] = False
    relaxable: ClassVar[bool] = False
    bound_side: ClassVar[str | None] = "lower"

    def _bound(self) -> float | None:
        return 0.0

    def resolve(self, u: Universe) -> Rows:
        idx = np.flatnonzero(~u.hedge)
        return Rows(u.ids_at(idx), np.zeros(idx.size), np.full(idx.size, np.inf), structure={"idx": idx})


class NoNewDeposits(_WeightBound):
    r"""Markets that accept no deposits (frozen or paused) can only shrink: added by the solver for
    every opportunity with ``depositable = false``, not written in policies.

    .. math:: w_i \le w^0_i \qquad i : \text{not depositable}
    """

    kind: Literal["no_new_deposits"] = "no_new_deposits"
    policy_kind: ClassVar[bool] = False
    relaxable: ClassVar[bool] = False

    def _bound(self) -> float | None:
        return None

    def resolve(self, u: Universe) -> Rows:
        idx = np.array([i for i, o in enumerate(u.snapshot.opportunities) if not o.depositable], dtype=int)
        return Rows(u.ids_at(idx), np.full(idx.size, -np.inf), np.asarray(u.w0)[idx],
                    structure={"idx": idx})
