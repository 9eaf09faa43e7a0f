"""Max_weight and min_weight: checked on hand-made weights with numbers worked out by hand (no solver)."""


from __future__ import annotations

import numpy as np

from tests.constraints.book import rows


def test_max_weight_with_selection_and_limits() -> None:
    out = rows({"kind": "max_weight", "max": 0.35, "select": {"protocol": "aave-v3"}, "limits": {"b": 0.2}})
    assert set(out) == {"a", "b"}
    assert out["a"] == (0.3, -np.inf, 0.35) and out["b"] == (0.25, -np.inf, 0.2)


def test_min_weight_on_hedge_bounds_short_notional() -> None:
    out = rows({"kind": "min_weight", "limits": {"h": -0.1}})
    assert out == {"h": (-0.05, -0.1, np.inf)}
