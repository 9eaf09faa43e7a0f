"""Duration and exposure bands: checked on hand-made weights with numbers worked out by hand (no solver)."""


from __future__ import annotations

import numpy as np
import pytest

from bondfolio.errors import InputError
from tests.constraints.book import rows


def test_duration_band_includes_hedge() -> None:
    out = rows({"kind": "duration", "target": 0.2, "tolerance": 0.1})
    # 0.4 * 0.5 + (-0.05) * (-2) = 0.3
    assert out["portfolio"] == pytest.approx((0.3, 0.1, 0.3))


def test_exposure_band_from_exposures() -> None:
    out = rows({"kind": "exposure", "attribute": "delta:ETH", "max": 0.1})
    assert out["delta:ETH"] == pytest.approx((0.125, -np.inf, 0.1))


def test_exposure_unknown_attribute() -> None:
    with pytest.raises(InputError, match=r"attribute 'delta:BTC' is neither a numeric field nor an exposure"):
        rows({"kind": "exposure", "attribute": "delta:BTC", "max": 0.1})
