"""Turnover: checked on hand-made weights with numbers worked out by hand (no solver)."""


from __future__ import annotations

import numpy as np
import pytest

from bondfolio.inputs import Holdings
from tests.constraints.book import rows, universe


def test_turnover_against_holdings() -> None:
    u = universe(Holdings(positions={"a": 500_000.0, "c": 100_000.0}, cash=400_000.0))
    # |0.3-0.5| + |0.25-0| + |0.4-0.1| + |-0.05-0| = 0.2 + 0.25 + 0.3 + 0.05
    assert rows({"kind": "turnover", "max": 0.5}, u)["portfolio"] == pytest.approx((0.8, -np.inf, 0.5))
