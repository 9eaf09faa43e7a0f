"""Liquidity_buffer: checked on hand-made weights with numbers worked out by hand (no solver)."""


from __future__ import annotations

import numpy as np
import pytest

from tests.constraints.book import rows


def test_liquidity_buffer_caps_by_available_liquidity() -> None:
    # horizon 1 day: a (min(0.3, 0.2) = 0.2) + b (min(0.25, 0.05) = 0.05) + cash 0.05 = 0.30; c waits 3 days
    assert rows({"kind": "liquidity_buffer", "horizon_days": 1, "min": 0.4})["1d"] == pytest.approx((0.3, 0.4, np.inf))
    # horizon 3 days: c has no available_liquidity figure, counts in full: 0.30 + 0.4
    assert rows({"kind": "liquidity_buffer", "horizon_days": 3, "min": 0.4})["3d"][0] == pytest.approx(0.7)
    uncapped = rows({"kind": "liquidity_buffer", "horizon_days": 1, "min": 0.4, "cap_by_available_liquidity": False})
    assert uncapped["1d"][0] == pytest.approx(0.6)
