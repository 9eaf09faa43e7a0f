"""Liquidity_share and tvl_share: checked on hand-made weights with numbers worked out by hand (no solver)."""


from __future__ import annotations

import numpy as np
import pytest

from bondfolio.errors import InputError
from tests.constraints.book import rows


def test_liquidity_share_bound_in_nav_fraction() -> None:
    out = rows({"kind": "liquidity_share", "max_share": 0.5, "select": {"ids": ["a", "b"]}})
    # a: 0.5 * 200k / 1M = 0.1 ; b: 0.5 * 50k / 1M = 0.025
    assert out == {"a": (0.3, -np.inf, pytest.approx(0.1)), "b": (0.25, -np.inf, pytest.approx(0.025))}


def test_liquidity_share_missing_liquidity_named() -> None:
    with pytest.raises(InputError, match=r"opportunities 'c' have no 'available_liquidity'"):
        rows({"kind": "liquidity_share", "max_share": 0.5})


def test_tvl_share() -> None:
    out = rows({"kind": "tvl_share", "max_share": 0.1})
    assert out["c"] == (0.4, -np.inf, pytest.approx(0.05))
    assert "h" not in out
