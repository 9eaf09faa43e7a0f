"""The shared row machinery: slack and violation by hand, the DCP check, labelled Parameters."""

from __future__ import annotations

from typing import ClassVar, Literal

import cvxpy as cp
import numpy as np
import pytest

from bondfolio.constraints import Constraint, ParamSet, Point, Rows, Vars
from bondfolio.errors import ConstraintCompileError
from bondfolio.inputs import Universe, load_policy
from tests.constraints.book import X, universe
from tests.factories import policy


def test_violation_and_slack() -> None:
    (c,) = load_policy(policy({"kind": "max_weight", "max": 0.35})).constraints
    res = {r.row: r for r in c.check(X, universe())}  # type: ignore[attr-defined]
    assert res["c"].violation == pytest.approx(0.05) and res["c"].slack == pytest.approx(-0.05)
    assert res["a"].violation == 0.0 and res["a"].slack == pytest.approx(0.05)


class _Concave(Constraint):
    """A deliberately broken family: a concave row under an upper bound (not DCP)."""

    kind: Literal["test_concave_cap"] = "test_concave_cap"
    policy_kind: ClassVar[bool] = False

    def resolve(self, u: Universe) -> Rows:
        return Rows(["sqrt"], -np.inf, 0.5)

    def expression(self, rows: Rows, p: ParamSet, v: Vars) -> cp.Expression:
        return cp.sum(cp.sqrt(v.w))

    def evaluate(self, rows: Rows, x: Point, u: Universe) -> np.ndarray:
        return np.array([np.sum(np.sqrt(x.w))])


def test_a_family_that_is_not_dcp_is_named_at_compile_time() -> None:
    u = universe()
    with pytest.raises(ConstraintCompileError, match=r"constraint 'test_concave_cap' \(_Concave\): row 'sqrt' has an? "
                                                     r"upper bound but its expression is not convex"):
        _Concave().compile(u, Vars(u))


def test_parameters_carry_the_family_label() -> None:
    u = universe()
    (c,) = load_policy(policy({"kind": "duration", "min": 0.1})).constraints
    comp = c.compile(u, Vars(u))  # type: ignore[attr-defined]
    names = {p.name() for con in comp.cvx for p in con.parameters()}
    assert names and all(n.startswith("duration{min=0.1}:") for n in names)
