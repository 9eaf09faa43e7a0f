"""The budget family: checked on hand-made weights with numbers worked out by hand (no solver)."""


from __future__ import annotations

import pytest

from bondfolio.inputs import load_policy
from tests.constraints.book import X, rows, universe
from tests.factories import policy


def test_budget_excludes_hedges_and_counts_cash() -> None:
    out = rows({"kind": "budget", "allow_cash": True, "max_cash": 0.1})
    assert out["invested"] == pytest.approx((1.0, 1.0, 1.0))  # 0.3 + 0.25 + 0.4 + cash 0.05
    assert out["cash"] == pytest.approx((0.05, 0.0, 0.1))


def test_budget_without_cash_forbids_it() -> None:
    (c,) = load_policy(policy({"kind": "budget"})).constraints
    res = {r.row: r for r in c.check(X, universe())}  # type: ignore[attr-defined]
    assert res["cash"].upper == 0.0 and res["cash"].violation == pytest.approx(0.05)
