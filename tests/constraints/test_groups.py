"""Group_cap and group_floor: checked on hand-made weights with numbers worked out by hand (no solver)."""


from __future__ import annotations

import numpy as np
import pytest

from tests.constraints.book import rows


def test_group_cap_by_protocol() -> None:
    out = rows({"kind": "group_cap", "by": "protocol", "max": 0.5, "limits": {"pendle": 0.3}})
    assert out["protocol=aave-v3"] == pytest.approx((0.55, -np.inf, 0.5))
    assert out["protocol=pendle"] == pytest.approx((0.4, -np.inf, 0.3))
    assert "protocol=swaps" not in out  # hedges are not deposits


def test_group_cap_by_tag_key() -> None:
    out = rows({"kind": "group_cap", "by": "oracle", "max": 0.6})
    assert out["oracle=chainlink"][0] == pytest.approx(0.55)
    assert out["oracle=pendle-twap"][0] == pytest.approx(0.4)


def test_group_floor_by_tier() -> None:
    out = rows({"kind": "group_floor", "by": "tier", "limits": {"core": 0.6}})
    assert out == {"tier=core": pytest.approx((0.55, 0.6, np.inf))}


def test_a_floor_on_a_group_with_no_selected_deposit_is_an_input_error() -> None:
    from bondfolio.errors import InputError

    with pytest.raises(InputError, match=r"protocol \['pendle'\] has no selected deposit .* so its floor cannot "
                                         r"hold: widen the selection or drop the floor"):
        rows({"kind": "group_floor", "by": "protocol", "limits": {"pendle": 0.1},
              "select": {"exclude": ["c"]}})
