"""Risk_budget and max_volatility: checked on hand-made weights with numbers worked out by hand (no solver)."""


from __future__ import annotations

import numpy as np
import pytest

from tests.constraints.book import W, rows, universe


def test_risk_budget_counts_hedge_notional() -> None:
    out = rows({"kind": "risk_budget", "max": 0.2})
    # 0.3*0.1 + 0.25*0.2 + 0.4*0.4 + |-0.05|*0.3 = 0.03 + 0.05 + 0.16 + 0.015
    assert out["portfolio"] == pytest.approx((0.255, -np.inf, 0.2))


def test_max_volatility_matches_dense_quadratic_form() -> None:
    u = universe()
    cov = np.asarray(u.snapshot.risk.covariance)
    expected = float(np.sqrt(W @ cov @ W))
    assert rows({"kind": "max_volatility", "max": 0.02}, u)["portfolio"][0] == pytest.approx(expected, rel=1e-12)
