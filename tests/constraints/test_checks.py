"""The program's check as arrays (:class:`bondfolio.constraints.base.Checks`) against the per-row check."""

from __future__ import annotations

import numpy as np

from bondfolio.constraints.base import Checks
from bondfolio.constraints.variables import Point
from bondfolio.solver.api import load_inputs
from bondfolio.solver.program import Program
from tests.solver.test_direct import books


def test_checks_equal_the_per_row_check_on_a_violating_point() -> None:
    snapshot, policy, holdings = books.book(80, seed=5)
    inputs = load_inputs(snapshot, policy, holdings)
    program = Program(inputs.universe, inputs.policy)
    # an allocation breaking several families: everything in the first three positions
    w = np.zeros(80)
    w[:3] = [0.5, 0.3, 0.2]
    point = Point(w, 0.0)
    checks = program.check(point)
    assert isinstance(checks, Checks)
    rows = [r for comp in program.compiled for r in comp.constraint.check(point, inputs.universe, comp.rows)]
    assert list(checks) == rows
    assert len(checks) == len(rows) and checks[len(rows) - 1] == rows[-1] and checks[-5] == rows[-5]
    assert checks.max_violation == max(r.violation for r in rows) > 0.1
    assert checks.worst() == max(rows, key=lambda r: r.violation)
    assert checks.violations(1e-7) == [r for r in rows if r.violation > 1e-7]
    assert len(checks.violations(1e-7)) > 3
