"""Caps and floors on groups: ``group_cap`` and ``group_floor`` by attribute or tag."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from bondfolio._lazy import lazy_module
from bondfolio.constraints.base import Constraint, Linear, ParamSet, Rows
from bondfolio.constraints.select import Selector
from bondfolio.constraints.variables import Point, Vars
from bondfolio.inputs.base import Fraction
from bondfolio.inputs.universe import Universe

if TYPE_CHECKING:
    import cvxpy as cp
    import scipy.sparse as sp
else:
    cp = lazy_module("cvxpy", globals(), "cp")
    sp = lazy_module("scipy.sparse", globals(), "sp")

__all__ = ["GroupCap", "GroupFloor"]


class _GroupBound(Constraint):
    by: str = Field(min_length=1)
    """What to group by: ``protocol``, ``chain``, ``asset``, ``kind``, ``tier``, ``market``, ``id``, a tag
    key (``oracle`` groups ``oracle:*`` tags), or ``tag`` (every label its own group)."""
    limits: dict[str, Fraction] = Field(default_factory=dict)
    """Per-group bounds overriding the common one, keyed by group value (e.g. ``aave-v3``)."""
    select: Selector = Field(default_factory=Selector)
    """Which opportunities count towards their groups (all deposits by default)."""

    side: ClassVar[str] = "upper"

    def _bound(self) -> float | None:
        raise NotImplementedError

    @model_validator(mode="after")
    def _some(self) -> _GroupBound:
        if self._bound() is None and not self.limits:
            common = "max" if self.side == "upper" else "min"
            raise ValueError(f"give '{common}' (every group) or 'limits' (named groups), or both")
        return self

    def resolve(self, u: Universe) -> Rows:
        try:
            groups = u.groups(self.by)
        except KeyError:
            raise self.fail(f"cannot group by '{self.by}': use one of {u.groupable()}") from None
        unknown = [k for k in self.limits if k not in groups]
        if unknown:
            raise self.fail(f"limits name {self.by} {unknown}, which no opportunity of the snapshot has "
                            f"(known: {sorted(groups)}): fix the names or drop them")
        members = self.select.mask(u, self.label) & ~u.hedge
        common = self._bound()
        labels: list[str] = []
        bounds: list[float] = []
        rows_i: list[int] = []
        cols: list[int] = []
        empty_floors = []
        for value, idx in groups.items():
            bound = self.limits.get(value, common)
            idx = idx[members[idx]]
            if bound is None or (idx.size == 0 and value not in self.limits):
                continue
            if idx.size == 0 and self.side == "lower" and bound > 0:
                empty_floors.append(value)
                continue
            r = len(labels)
            labels.append(f"{self.by}={value}")
            bounds.append(bound)
            rows_i.extend([r] * idx.size)
            cols.extend(idx.tolist())
        if empty_floors:
            raise self.fail(f"{self.by} {empty_floors} has no selected deposit (its members are hedges or left out by "
                            "'select'), so its floor cannot hold: widen the selection or drop the floor")
        # membership as (row, column) pairs: the check sums them with numpy, and the sparse matrix cvxpy
        # needs is built when the family is compiled (so validating a policy never imports scipy)
        pairs = (np.asarray(rows_i, dtype=np.intp), np.asarray(cols, dtype=np.intp))
        values = np.array(bounds, dtype=float)
        inf = np.full(len(labels), np.inf)
        lower, upper = (-inf, values) if self.side == "upper" else (values, inf)
        return Rows(labels, lower, upper, structure={"members": pairs, "n": u.n})

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        r, c = rows.structure["members"]
        matrix = sp.csr_matrix((np.ones(c.size), (r, c)), shape=(len(rows.labels), rows.structure["n"]))
        return matrix @ v.w

    def linear(self, rows: Rows, v: Vars) -> Linear | None:
        r, c = rows.structure["members"]
        return Linear.of(len(rows.labels), v.n, r, c)

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        r, c = rows.structure["members"]
        return np.bincount(r, weights=np.asarray(x.w, dtype=float)[c], minlength=len(rows.labels))


class GroupCap(_GroupBound):
    r"""Cap on the deposits of each group.

    .. math:: \sum_{i \in g} w_i \le \text{max}_g \qquad \text{for every group } g

    ``w`` in fractions of NAV; hedges do not count. Every group gets ``max`` unless ``limits`` names it.
    """

    kind: Literal["group_cap"] = "group_cap"
    max: Fraction | None = None
    """Common cap for every group, fraction of NAV."""

    def _bound(self) -> float | None:
        return self.max


class GroupFloor(_GroupBound):
    r"""Floor on the deposits of each group.

    .. math:: \sum_{i \in g} w_i \ge \text{min}_g \qquad \text{for every group } g

    ``w`` in fractions of NAV; hedges do not count.
    """

    kind: Literal["group_floor"] = "group_floor"
    min: Fraction | None = None
    """Common floor for every group, fraction of NAV."""

    side: ClassVar[str] = "lower"

    def _bound(self) -> float | None:
        return self.min
